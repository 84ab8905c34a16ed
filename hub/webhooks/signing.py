"""Standard Webhooks signing: `whsec_` secrets and `v1,<base64 HMAC-SHA256>` signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix
SECRET_BYTES = 32  # the spec asks for at least 24


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(key: bytes, *, message_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%b.%d.%b" % (message_id.encode(), timestamp, body)
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(keys: Sequence[bytes], *, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,` signature per live key, space-separated (the newest first)."""
    return " ".join(
        sign(key, message_id=message_id, timestamp=timestamp, body=body) for key in keys
    )


class Signer:
    """`signature_header` for many messages under the same keys: each key's HMAC state is
    prepared once and copied per message (cheaper than keying HMAC afresh)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._prepared = [hmac.new(key, digestmod=hashlib.sha256) for key in keys]

    def __call__(self, *, message_id: str, timestamp: int, body: bytes) -> str:
        signed = b"%b.%d.%b" % (message_id.encode(), timestamp, body)
        signatures = []
        for prepared in self._prepared:
            mac = prepared.copy()
            mac.update(signed)
            signatures.append("v1," + base64.b64encode(mac.digest()).decode())
        return " ".join(signatures)
