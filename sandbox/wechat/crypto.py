"""An independent implementation of WeChat's callback scheme (WXBizMsgCrypt), written with `cryptography`
directly, so the tests do not check wechatpy against itself. Checked first against the known-answer vectors
in the shared reference (tests/test_wechat_crypto.py).

AES-256-CBC with key = b64decode(EncodingAESKey + "="), IV = key[:16], PKCS#7 over 32-byte blocks,
plaintext = random(16) || uint32_be(len(msg)) || msg || receive_id, signature = sha1 of the sorted strings.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import string
import struct
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def new_aes_key() -> str:
    """A fresh 43-character EncodingAESKey, as the WeChat admin console generates."""
    return base64.b64encode(os.urandom(32)).decode().rstrip("=")


def new_token(length: int = 16) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def _key(encoding_aes_key: str) -> bytes:
    key = base64.b64decode(encoding_aes_key + "=")
    assert len(key) == 32
    return key


def encrypt(encoding_aes_key: str, receive_id: str, plaintext: str, random_prefix: bytes | None = None) -> str:
    key = _key(encoding_aes_key)
    msg = plaintext.encode()
    prefix = random_prefix if random_prefix is not None else os.urandom(16)
    body = prefix + struct.pack(">I", len(msg)) + msg + receive_id.encode()
    pad = BLOCK - len(body) % BLOCK
    body += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(body) + encryptor.finalize()).decode()


def decrypt(encoding_aes_key: str, encrypted: str) -> tuple[str, str, bytes]:
    """(plaintext, receive_id, random prefix)."""
    key = _key(encoding_aes_key)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    body = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    pad = body[-1]
    if not 1 <= pad <= BLOCK or body[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding")
    body = body[:-pad]
    (length,) = struct.unpack(">I", body[16:20])
    return body[20:20 + length].decode(), body[20 + length:].decode(), body[:16]


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def xml(fields: dict[str, object]) -> str:
    parts = []
    for name, value in fields.items():
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        elif isinstance(value, dict):
            parts.append(f"<{name}>{xml(value)[5:-6]}</{name}>")
        else:
            parts.append(f"<{name}>{cdata(str(value))}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


@dataclass
class Signed:
    """One callback request as WeChat would send it: the query string and the body."""

    query: dict[str, str]
    body: str

    @property
    def query_string(self) -> str:
        return urlencode(self.query)


@dataclass
class CallbackSigner:
    """Signs and encrypts callbacks like the WeChat servers do, for a WeCom app or an Official Account."""

    token: str
    aes_key: str | None
    receive_id: str

    def verify_url(self, echo: str, *, timestamp: str | None = None, nonce: str | None = None) -> Signed:
        """WeCom URL verification: the echostr is encrypted and signed."""
        ts, nonce = timestamp or str(int(time.time())), nonce or str(secrets.randbelow(10 ** 9))
        echostr = encrypt(self.aes_key, self.receive_id, echo)
        return Signed({"msg_signature": signature(self.token, ts, nonce, echostr), "timestamp": ts,
                       "nonce": nonce, "echostr": echostr}, "")

    def wecom(self, inner_xml: str, *, timestamp: str | None = None, nonce: str | None = None,
              agent_id: str = "1000002") -> Signed:
        ts, nonce = timestamp or str(int(time.time())), nonce or str(secrets.randbelow(10 ** 9))
        encrypted = encrypt(self.aes_key, self.receive_id, inner_xml)
        body = ("<xml><ToUserName>" + cdata(self.receive_id) + "</ToUserName><Encrypt>" + cdata(encrypted)
                + "</Encrypt><AgentID>" + cdata(agent_id) + "</AgentID></xml>")
        return Signed({"msg_signature": signature(self.token, ts, nonce, encrypted), "timestamp": ts,
                       "nonce": nonce}, body)

    def official_plain(self, inner_xml: str, *, timestamp: str | None = None) -> Signed:
        ts, nonce = timestamp or str(int(time.time())), str(secrets.randbelow(10 ** 9))
        return Signed({"signature": signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce,
                       "openid": _field(inner_xml, "FromUserName")}, inner_xml)

    def official_safe(self, inner_xml: str, *, timestamp: str | None = None) -> Signed:
        ts, nonce = timestamp or str(int(time.time())), str(secrets.randbelow(10 ** 9))
        encrypted = encrypt(self.aes_key, self.receive_id, inner_xml)
        body = "<xml><ToUserName>" + cdata(_field(inner_xml, "ToUserName")) + "</ToUserName><Encrypt>" \
            + cdata(encrypted) + "</Encrypt></xml>"
        return Signed({"signature": signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce,
                       "openid": _field(inner_xml, "FromUserName"), "encrypt_type": "aes",
                       "msg_signature": signature(self.token, ts, nonce, encrypted)}, body)

    def official_verify(self, echo: str) -> Signed:
        ts, nonce = str(int(time.time())), str(secrets.randbelow(10 ** 9))
        return Signed({"signature": signature(self.token, ts, nonce), "timestamp": ts, "nonce": nonce,
                       "echostr": echo}, "")

    def open_reply(self, reply_xml: str) -> str:
        """The plaintext of an encrypted passive reply, after checking its signature."""
        encrypted = _field(reply_xml, "Encrypt")
        given = _field(reply_xml, "MsgSignature")
        ts, nonce = _field(reply_xml, "TimeStamp"), _field(reply_xml, "Nonce")
        if signature(self.token, ts, nonce, encrypted) != given:
            raise ValueError("reply signature does not verify")
        plain, receive_id, _ = decrypt(self.aes_key, encrypted)
        if receive_id != self.receive_id:
            raise ValueError("reply for another account")
        return plain


def _field(doc: str, name: str) -> str:
    start = doc.find(f"<{name}>")
    if start < 0:
        return ""
    value = doc[start + len(name) + 2:doc.find(f"</{name}>", start)]
    if value.startswith("<![CDATA["):
        value = value[9:-3]
    return value


def text_field(doc: str, name: str) -> str:
    return _field(doc, name)


__all__ = ["CallbackSigner", "Signed", "decrypt", "encrypt", "new_aes_key", "new_token", "signature",
           "text_field", "xml"]
