"""Secrets at rest (Fernet), signed action references and log redaction."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Every column that holds SecretBox ciphertext, as (table, column). `ozonbot rotate-key` re-encrypts
# exactly these, so a model that stores a secret (e.g. a WeChat app secret) registers its column here
# next to its definition: encrypted_field("wechat_app", "secret_enc").
ENCRYPTED_FIELDS: set[tuple[str, str]] = set()


def encrypted_field(table: str, column: str) -> None:
    ENCRYPTED_FIELDS.add((table, column))


class SecretBox:
    """Encrypts credentials for storage. Old keys may be kept for reading during rotation."""

    def __init__(self, key: str | bytes, *old_keys: str | bytes):
        self._current = Fernet(key)
        self._reader = MultiFernet([self._current, *(Fernet(k) for k in old_keys)])
        self._mac_key = hashlib.sha256(b"ozonbot-actions:" + _as_bytes(key)).digest()

    def encrypt(self, plaintext: str) -> str:
        return self._current.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._reader.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with the configured key") from exc

    def sign(self, message: str, length: int = 8) -> str:
        """Short URL-safe MAC: enough to make forged button data worthless."""
        digest = hmac.new(self._mac_key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:length]

    def verify(self, message: str, signature: str, length: int = 8) -> bool:
        """False for anything but the right signature; bytes are compared, since compare_digest raises
        TypeError on a str that is not ASCII (a forged link or button gave a 500)."""
        return hmac.compare_digest(self.sign(message, length).encode(), signature.encode("utf-8", "replace"))


def _as_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


KEY_FILE = "secret.key"
NEW_KEY_FILE = "secret.key.new"  # exists only while `ozonbot rotate-key` runs (or was cut short)
OLD_KEY_FILE = "secret.key.old"


class InterruptedRotation(RuntimeError):
    pass


def load_or_create_key(data_dir: Path) -> str:
    """The Fernet key file in the data dir, created with mode 0600 on first run."""
    if (data_dir / NEW_KEY_FILE).exists():
        raise InterruptedRotation(f"{data_dir / NEW_KEY_FILE} exists: a key rotation was cut short. "
                                  "Run `ozonbot rotate-key` again to finish it before starting the service.")
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    make_private_dir(data_dir)
    key = Fernet.generate_key().decode()
    write_secret_file(path, key, exclusive=True)
    return key


def make_private_dir(path: Path) -> None:
    """L8: the data dir holds the key and the database: only its owner may list or enter it."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)  # whatever the umask


def write_secret_file(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Mode 0600 from the first byte (never world-readable for an instant), flushed to disk."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)


def new_token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


class RedactingFilter(logging.Filter):
    """Replaces every registered secret in log records, so a key can never reach a log line."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._patterns: list[re.Pattern] = []

    def add(self, *values: str | None) -> None:
        self._secrets.update(v for v in values if v and len(v) >= 6)

    def add_pattern(self, pattern: str) -> None:
        """For secrets not known in advance (a key typed in a chat, logged by a library before any handler
        runs): group 1 of every match is kept, the rest becomes ***."""
        self._patterns.append(re.compile(pattern))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        for pattern in self._patterns:
            text = pattern.sub(lambda m: m.group(1) + "***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets and not self._patterns:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # a traceback's text is logged too: format it here so it passes the same filter
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True
