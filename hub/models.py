"""Every domain's tables, imported in one place so that metadata (and Alembic) sees them all."""

from hub.alerts.models import Alert, AlertEmail, AlertPreference, AlertRecipient
from hub.audit.models import AuditChainHead, AuditEntry
from hub.auth.models import ApiToken, Membership, User, UserTotp
from hub.complaints.models import Complaint, ComplaintChange, Resolution
from hub.core.crypto.models import TenantKey
from hub.core.db import Base
from hub.events.models import Event
from hub.keys.models import ApiKey, ApiKeyContract, ApiKeyDesignee, ApiKeyVersion, Contract
from hub.portal.models import PortalSession
from hub.syncs.models import QuarantinedRow, SyncCursor, SyncRun, SyncSchedule
from hub.tenants.models import Tenant
from hub.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

metadata = Base.metadata

__all__ = [
    "Alert",
    "AlertEmail",
    "AlertPreference",
    "AlertRecipient",
    "ApiKey",
    "ApiKeyContract",
    "ApiKeyDesignee",
    "ApiKeyVersion",
    "ApiToken",
    "AuditChainHead",
    "AuditEntry",
    "Complaint",
    "ComplaintChange",
    "Contract",
    "Event",
    "Membership",
    "PortalSession",
    "QuarantinedRow",
    "Resolution",
    "SyncCursor",
    "SyncRun",
    "SyncSchedule",
    "Tenant",
    "TenantKey",
    "User",
    "UserTotp",
    "WebhookAttempt",
    "WebhookEndpoint",
    "WebhookMessage",
    "metadata",
]
