"""Typed errors of the CTM client and the file parser (CTM-API.md section 4's table).

Messages name keys by key ID and contracts by number only: never a secret, token or PHI.
"""

from __future__ import annotations


class CtmError(Exception):
    """Base of everything the CTM client or parser raises."""


class EnvironmentMismatch(CtmError):
    """A sandbox key meeting production (or the reverse) — refused before any request."""


class KeyRejected(CtmError):
    """403 on the token call: the key was rotated, expired or deactivated; stop using it."""

    def __init__(self, key_id: str, detail: str = "CMS refused the key (403 on token call)"):
        super().__init__(f"key {key_id}: {detail}")
        self.key_id = key_id


class ContractAccessDenied(CtmError):
    """403 on a data call: this key may not read the contract (or its user lost access).
    `key_id` names the CMS key ID that was refused, when the client knows it."""

    def __init__(
        self,
        contract: str | None,
        detail: str = "access denied (403)",
        *,
        key_id: str | None = None,
    ) -> None:
        where = f"contract {contract}" if contract else "upload"
        super().__init__(f"{where}: {detail}; request a new key for this contract")
        self.contract = contract
        self.key_id = key_id


class RateLimited(CtmError):
    """429 that outlasted our retries; `retry_after` is CMS's Retry-After in seconds."""

    def __init__(self, retry_after: float | None) -> None:
        hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        super().__init__(f"CMS rate limit (429){hint}")
        self.retry_after = retry_after


class CtmUnavailable(CtmError):
    """5xx, timeouts and connection failures that outlasted our retries."""


class UploadOutcomeUnknown(CtmError):
    """An upload CMS may have taken: the connection failed after the file went out, or CMS
    answered 2xx with a body that cannot be read. It is not sent again (that could upload
    it twice): a download of the contract shows whether CMS has the resolutions."""


class UploadRefused(CtmError):
    """CMS refused the whole upload file (400 or 422): it took none of it, and the same file
    would be refused again. `detail` is what CMS said, cut short."""

    def __init__(self, status: int, detail: str) -> None:
        said = f": {detail}" if detail else ""
        super().__init__(f"CMS refused the whole upload file ({status}){said}")
        self.status, self.detail = status, detail


class CtmProtocolError(CtmError):
    """CMS answered with something that is not what the API promises (HTML, not CSV, bad JSON)."""


class TruncatedDownload(CtmProtocolError):
    """The download stopped before the end: discard everything read from it."""


class FileRejected(CtmError):
    """The whole file is refused (empty, missing or duplicate column, truncated)."""


class FileTruncated(FileRejected):
    """The file ends inside a quoted field: part of it never arrived."""
