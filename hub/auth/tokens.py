"""API token format `hub_<30 base62>_<6 base62 checksum>`, and password hashing.

The fixed prefix and checksum make a leaked token recognisable to secret scanners (and to
our own log redaction) without a database lookup; only a SHA-256 of it is ever stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LENGTH = 30  # 30 base62 characters: ~178 bits
CHECKSUM_LENGTH = 6
TOKEN_PATTERN = re.compile(r"\bhub_[0-9A-Za-z]{30}_[0-9A-Za-z]{6}\b")
DISPLAY_PREFIX_LENGTH = 12  # "hub_" and 8 characters of the body


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def new_token() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return f"hub_{body}_{_checksum(body)}"


def is_well_formed(token: str) -> bool:
    """True when `token` has our shape and its checksum matches (no database needed)."""
    if not TOKEN_PATTERN.fullmatch(token):
        return False
    body, checksum = token[4:].split("_")
    return secrets.compare_digest(_checksum(body), checksum)


def token_hash(token: str) -> str:
    # Tokens carry ~178 random bits, so a fast hash is safe and keeps lookups cheap.
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(18)
