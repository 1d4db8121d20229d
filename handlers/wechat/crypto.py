"""Inbound callback security for WeCom and the Official Account: signatures, AES and XML parsing.

wechatpy does the AES and the message parsing; the signature comparison is ours (constant time, and
checked before any decryption), and every failure becomes one exception type the routes turn into 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import xmltodict
from wechatpy import parse_message as parse_official
from wechatpy.crypto import PrpCrypto
from wechatpy.enterprise import parse_message as parse_enterprise
from wechatpy.enterprise.crypto import PrpCrypto as CorpPrpCrypto
from wechatpy.enterprise.events import register_event
from wechatpy.events import BaseEvent
from wechatpy.fields import BaseField, IntegerField, StringField

MAX_CLOCK_SKEW = 300  # seconds: WeChat retries within a minute; older timestamps are replays


class CallbackRejected(Exception):
    """A callback that is not from WeChat (bad signature, stale, undecryptable): answered 403."""


@register_event("template_card_event")
class TemplateCardEvent(BaseEvent):
    """A button press on a WeCom template_card (not known to wechatpy 1.8.18)."""

    event = "template_card_event"
    key = StringField("EventKey")
    task_id = StringField("TaskId")
    card_type = StringField("CardType")
    response_code = StringField("ResponseCode")
    agent = IntegerField("AgentID", 0)
    selected_items = BaseField("SelectedItems", None)


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(given: str | None, *parts: str) -> None:
    if not given or not hmac.compare_digest(sign(*parts), given.lower()):
        raise CallbackRejected("bad signature")


def check_fresh(timestamp: str | None, now: float | None = None) -> None:
    try:
        sent = int(timestamp or "")
    except ValueError:
        raise CallbackRejected("bad timestamp") from None
    if abs((now if now is not None else time.time()) - sent) > MAX_CLOCK_SKEW:
        raise CallbackRejected("stale timestamp")


def outer_fields(body: bytes | str) -> dict:
    """The envelope of a callback (ToUserName, Encrypt, AgentID…); entities and DTDs are refused."""
    try:
        doc = xmltodict.parse(body, disable_entities=True)
    except Exception:
        raise CallbackRejected("body is not XML") from None
    fields = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(fields, dict):
        raise CallbackRejected("body is not a WeChat message")
    return fields


def decrypt(encoding_aes_key: str, encrypted: str, receive_id: str, *, corp: bool) -> str:
    """Plaintext of an Encrypt field made for `receive_id`; anything else is rejected."""
    key = base64.b64decode(encoding_aes_key + "=")
    crypto = (CorpPrpCrypto if corp else PrpCrypto)(key)
    try:
        return crypto.decrypt(encrypted, receive_id)
    except Exception:  # wrong key gives UnicodeDecodeError and friends (wechat.md P5)
        raise CallbackRejected("cannot decrypt") from None


def encrypt_reply(token: str, encoding_aes_key: str, receive_id: str, plaintext: str, nonce: str,
                  *, corp: bool) -> str:
    """An encrypted passive reply envelope."""
    key = base64.b64decode(encoding_aes_key + "=")
    crypto = (CorpPrpCrypto if corp else PrpCrypto)(key)
    encrypted = crypto.encrypt(plaintext, receive_id).decode()
    timestamp = str(int(time.time()))
    return ("<xml><Encrypt><![CDATA[" + encrypted + "]]></Encrypt><MsgSignature><![CDATA["
            + sign(token, timestamp, nonce, encrypted) + "]]></MsgSignature><TimeStamp>" + timestamp
            + "</TimeStamp><Nonce><![CDATA[" + nonce + "]]></Nonce></xml>")


def parse(plaintext: str, *, corp: bool):
    try:
        return (parse_enterprise if corp else parse_official)(plaintext)
    except Exception:
        raise CallbackRejected("message does not parse") from None


def selected_options(event) -> list[str]:
    """Option ids chosen in a card's dropdown (xmltodict gives a dict for one item, a list for several)."""
    items = (event.selected_items or {}).get("SelectedItem") if isinstance(event.selected_items, dict) else None
    items = items if isinstance(items, list) else [items] if items else []
    chosen = []
    for item in items:
        ids = (item.get("OptionIds") or {}).get("OptionId") if isinstance(item, dict) else None
        chosen += ids if isinstance(ids, list) else [ids] if ids else []
    return [str(i) for i in chosen]


def dedupe_key(key: str) -> str:
    """Fits the key column; a long key keeps its start and a digest of the whole, never just a prefix."""
    return key if len(key) <= 190 else key[:140] + ":" + hashlib.sha256(key.encode()).hexdigest()
