"""Request and response bodies of the keys API. No response type has a secret field."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import msgspec

from hub.core.text import NO_NUL, Text

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]


class TechnicalPoc(msgspec.Struct, forbid_unknown_fields=True):
    name: NonEmpty
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=NO_NUL)]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    environment: str
    key_id: NonEmpty
    secret: Annotated[str, msgspec.Meta(max_length=4096)]
    hpms_user_id: NonEmpty
    technical_poc: TechnicalPoc
    label: Text = ""
    contracts: list[str] | None = None
    verify: bool = True
    expected_rotation_on: date | None = None
    # Register this key as the replacement of a compromised, deactivated or invalid key;
    # without `contracts`, the old key's contract mapping is copied.
    replaces: UUID | None = None


class KeyRotate(msgspec.Struct, forbid_unknown_fields=True):
    key_id: NonEmpty
    secret: Annotated[str, msgspec.Meta(max_length=4096)]
    # None: verify when the CTM endpoint answers, go on (unverified) when it does not.
    verify: bool | None = None
    expected_rotation_on: date | None = None


class KeyCompromise(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)] = ""


class KeyContractsPut(msgspec.Struct, forbid_unknown_fields=True):
    contracts: list[str]


class KeyDesigneesPut(msgspec.Struct, forbid_unknown_fields=True):
    users: list[UUID] = msgspec.field(default_factory=list)
    tokens: list[UUID] = msgspec.field(default_factory=list)


class ContractCreate(msgspec.Struct, forbid_unknown_fields=True):
    number: str


class ContractLink(msgspec.Struct):
    number: str
    access_lost_at: datetime | None
    access_lost_reason: str | None


class VersionView(msgspec.Struct):
    key_id: str
    state: str
    created_at: datetime
    verified_at: datetime | None
    retire_after: datetime | None
    secret_destroyed_at: datetime | None


class ResponsibleParty(msgspec.Struct):
    user_id: UUID
    email: str
    hpms_user_id: str


class KeyView(msgspec.Struct):
    id: UUID
    key_id: str | None
    environment: str
    label: str
    status: str
    status_reason: str | None
    contracts: list[ContractLink]
    responsible_party: ResponsibleParty
    technical_poc: TechnicalPoc
    designees: KeyDesigneesPut
    versions: list[VersionView]
    expected_rotation_on: date | None
    last_used_at: datetime | None
    last_failure_at: datetime | None
    last_failure_reason: str | None
    compromised_at: datetime | None
    deactivated_at: datetime | None
    replaces: UUID | None
    created_at: datetime
    updated_at: datetime


class ServingKey(msgspec.Struct):
    environment: str
    key: UUID
    # Other active keys that claim the same contract in this environment (reported, unused).
    also_claimed_by: list[UUID]


class ContractView(msgspec.Struct):
    id: UUID
    number: str
    serving: list[ServingKey]
    created_at: datetime
