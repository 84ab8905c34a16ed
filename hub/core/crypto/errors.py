"""What can go wrong opening, sealing or wrapping: each error names the key version and the
owner (tenant, field, row) that failed, and never carries a plaintext or key material."""

from __future__ import annotations

from uuid import UUID


class CryptoError(Exception):
    """Base of every crypto failure; the message is safe to log and to show an operator."""


class CryptoNotConfigured(CryptoError):
    """A session was used for sealing, but its `Database` was built without a `Crypto`."""


class MasterKeyError(CryptoError):
    """The master key ring cannot be loaded (bad file, bad format, missing in production)."""


class MasterKeyUnavailable(CryptoError):
    """No key in the ring has the version a data key was wrapped under."""

    def __init__(self, *, master_version: str, tenant_id: UUID, purpose: str, version: int) -> None:
        super().__init__(
            f"master key {master_version!r} is not in the key ring: cannot unwrap the "
            f"{purpose} key v{version} of tenant {tenant_id} (add the key back to "
            "HUB_MASTER_KEYS, or run `hub master-key rotate` before removing one)"
        )
        self.master_version = master_version
        self.tenant_id = tenant_id


class MasterKeyRejected(CryptoError):
    """The ring holds the master key version, but the wrapped data key does not open under it
    (a wrong key under the right name, or a wrapped key altered or moved to another tenant)."""

    def __init__(self, *, master_version: str, tenant_id: UUID, purpose: str, version: int) -> None:
        super().__init__(
            f"master key {master_version!r} does not unwrap the {purpose} key v{version} of "
            f"tenant {tenant_id}: wrong master key, or the wrapped key was altered"
        )
        self.master_version = master_version
        self.tenant_id = tenant_id


class TenantKeyMissing(CryptoError):
    """The tenant has no (live) data key of the version a sealed value names."""

    def __init__(self, *, tenant_id: UUID, version: int | None, field: str | None = None) -> None:
        what = "an active data key" if version is None else f"data key v{version}"
        where = f" (field {field})" if field else ""
        super().__init__(f"tenant {tenant_id} has no {what}{where}")
        self.tenant_id = tenant_id
        self.version = version


class TenantKeyDestroyed(TenantKeyMissing):
    """The tenant was offboarded and its data keys destroyed: its sealed values are gone."""

    def __init__(self, *, tenant_id: UUID, version: int | None, field: str | None = None) -> None:
        CryptoError.__init__(
            self,
            f"the data keys of tenant {tenant_id} were destroyed (crypto-shredded); "
            f"{'data key v' + str(version) if version is not None else 'its data'}"
            f"{' for field ' + field if field else ''} can never be opened again",
        )
        self.tenant_id = tenant_id
        self.version = version


class MalformedSealedValue(CryptoError):
    """The stored bytes are not a sealed value at all (truncated, or not ours)."""

    def __init__(self, reason: str, *, tenant_id: UUID, field: str, row: UUID) -> None:
        super().__init__(f"sealed value of tenant {tenant_id} field {field} row {row}: {reason}")


class UnknownFormatVersion(CryptoError):
    """The sealed value names a format this code does not know (newer code wrote it?)."""

    def __init__(self, found: int, *, tenant_id: UUID, field: str, row: UUID) -> None:
        super().__init__(
            f"sealed value of tenant {tenant_id} field {field} row {row} has format "
            f"version {found}, which this code does not read"
        )
        self.found = found


class SealedValueRejected(CryptoError):
    """Authentication failed: the value belongs to another tenant, field or row, or was
    altered. AES-GCM cannot tell these apart, and no plaintext is produced."""

    def __init__(self, *, tenant_id: UUID, field: str, row: UUID, version: int) -> None:
        super().__init__(
            f"sealed value does not open as tenant {tenant_id} field {field} row {row} "
            f"(data key v{version}): it was sealed for another tenant, field or row, "
            "or it was altered"
        )
        self.tenant_id = tenant_id
        self.field = field
        self.row = row
        self.version = version


class RetiredKeyInUse(CryptoError):
    """A retired data key still seals some of the tenant's values, so it may not be erased."""

    def __init__(self, *, tenant_id: UUID, uses: dict[int, dict[str, int]]) -> None:
        named = "; ".join(
            f"v{version}: " + ", ".join(f"{field} {count}" for field, count in fields.items())
            for version, fields in sorted(uses.items())
        )
        super().__init__(
            f"tenant {tenant_id} still has values sealed under retired data keys ({named}): "
            "re-seal them first (`hub tenants rotate-key`), then try again"
        )
        self.tenant_id = tenant_id
        self.uses = uses


class RotationNotSettled(CryptoError):
    """The tenant's data key changed too recently: another process may still seal under the
    key it replaced."""

    def __init__(self, *, tenant_id: UUID, version: int, wait_seconds: float) -> None:
        super().__init__(
            f"data key v{version} of tenant {tenant_id} became active too recently: other "
            "processes may still seal under the key it replaced; try again in "
            f"{wait_seconds:.0f} s"
        )
        self.tenant_id = tenant_id
        self.wait_seconds = wait_seconds
