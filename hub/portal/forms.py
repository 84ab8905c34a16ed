"""Reading what a form sent: each refusal is an `Invalid` naming the field, as the API's 400
names it, so a page shows the message beside that field."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, TypeVar

import msgspec

from hub.core.errors import Invalid

T = TypeVar("T")
# Lists typed in one box (contracts, event types): commas, semicolons or white space between.
SEPARATORS = re.compile(r"[\s,;]+")


def api_body(kind: type[T], fields: dict[str, Any]) -> T:
    """`fields` as the API's own body type, checked by its rules (lengths, patterns, no NUL):
    a page's form is held to the same limits as a JSON body."""
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as error:
        reason, _, where = str(error).partition(" - at `$.")
        raise Invalid(where.rstrip("`") or "form", reason) from None


def words(text: str) -> list[str]:
    """The items of a list typed in one box."""
    return [part for part in SEPARATORS.split(text) if part]


def day(field: str, text: str) -> date | None:
    """A date typed as YYYY-MM-DD (None when left empty)."""
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(field, "is not a date (YYYY-MM-DD)") from None
