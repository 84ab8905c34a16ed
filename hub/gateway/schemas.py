"""Request and response bodies of the gateway API. No response has a key's secret."""

from __future__ import annotations

from typing import Annotated

import msgspec

from hub.core.text import NO_NUL, Text


class KeyTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Text
    # "12h" when omitted: a key-bound token always expires (same syntax as POST /tokens).
    expires_in: Annotated[str, msgspec.Meta(max_length=16, pattern=NO_NUL)] | None = None


class Rejected(msgspec.Struct, rename="camel"):
    """One row CMS refused, as CMS words it (`complaintId`, `errors`)."""

    complaint_id: str
    errors: list[str]


class UploadAnswer(msgspec.Struct):
    """CMS's answer to a casework upload, as CMS's own JSON: `{"accepted", "rejected"}`."""

    accepted: list[str]
    rejected: list[Rejected]
