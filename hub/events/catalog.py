"""Every event type the hub records: the types README's event catalog documents (a test
keeps the two equal), and what a webhook endpoint may subscribe to."""

from __future__ import annotations

EVENT_TYPES: frozenset[str] = frozenset({
    "complaint.created", "complaint.updated",
    "resolution.accepted", "resolution.rejected", "resolution.unconfirmed",
    "sync.completed", "sync.failed",
    "key.created", "key.rotated", "key.suspended", "key.resumed", "key.contracts_changed",
    "key.designees_changed", "key.invalid", "key.access_lost", "key.access_restored",
    "key.compromised",
    "key.deactivated", "key.orphaned",
    "alert.raised", "alert.escalated", "alert.resolved",
    "webhook.test", "webhook.endpoint_disabled",
})  # fmt: skip

# The part before the dot of each type: what `complaint.*` may name.
DOMAINS: frozenset[str] = frozenset(t.split(".", 1)[0] for t in EVENT_TYPES)


def is_subscribable(pattern: str) -> bool:
    """`*`, a known domain's `domain.*`, or a known type."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return pattern[:-2] in DOMAINS
    return pattern in EVENT_TYPES
