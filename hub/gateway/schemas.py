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


class TokenRequest(msgspec.Struct, rename="camel"):
    """CMS's token call (`userName`, `keyId`, `keySecret`, `scopes`); other fields are
    ignored, as a CTM client may send them. `keySecret` is a hub token here."""

    key_id: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
    key_secret: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
    user_name: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)] | None = None
    scopes: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)] | None = None


class TokenAnswer(msgspec.Struct, rename="camel"):
    """CMS's answer shape: the hub token as `accessToken`, its remaining lifetime in
    seconds as `expires`."""

    access_token: str
    expires: int
