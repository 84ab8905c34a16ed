"""Request and response bodies of the alerts API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.alerts.models import Alert, AlertRecipient, EmailMode


class Subject(msgspec.Struct):
    type: str
    id: UUID
    label: str


class RecipientView(msgspec.Struct):
    reason: str
    user_id: UUID | None
    email: str | None


class AlertView(msgspec.Struct):
    id: UUID
    kind: str
    severity: str
    state: str
    subject: Subject
    message: str
    next_action: str
    stage: int
    details: dict[str, Any]
    recipients: list[RecipientView]
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: UUID | None
    resolved_at: datetime | None
    resolved_reason: str | None

    @classmethod
    def of(cls, alert: Alert, recipients: Sequence[AlertRecipient]) -> AlertView:
        return cls(
            id=alert.id,
            kind=alert.kind.value,
            severity=alert.severity.value,
            state=alert.state.value,
            subject=Subject(alert.subject_type.value, alert.subject_id, alert.subject_label),
            message=alert.message,
            next_action=alert.next_action,
            stage=alert.stage,
            details=alert.details,
            recipients=[_recipient(r) for r in recipients],
            raised_at=alert.raised_at,
            acknowledged_at=alert.acknowledged_at,
            acknowledged_by=alert.acknowledged_by,
            resolved_at=alert.resolved_at,
            resolved_reason=alert.resolved_reason,
        )


def _recipient(row: AlertRecipient) -> RecipientView:
    # Vendor operators are not the tenant's people: say that they were told, not who.
    if row.reason == "vendor_operator":
        return RecipientView(row.reason, None, None)
    return RecipientView(row.reason, row.user_id, row.email)


class SummaryView(msgspec.Struct):
    open: int
    acknowledged: int
    critical: int  # of the open and acknowledged ones


class PreferencesView(msgspec.Struct):
    email: EmailMode
    # Critical alerts (an invalid or compromised key) are emailed at once whatever `email` is.
    critical_always_emailed: bool = True


class PreferencesPut(msgspec.Struct, forbid_unknown_fields=True):
    email: EmailMode
