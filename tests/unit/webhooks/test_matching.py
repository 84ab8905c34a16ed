"""Fan-out's matching of events to endpoints: the batch form agrees with `matches`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from hypothesis import given
from hypothesis import strategies as st

from hub.webhooks.delivery import _matching, matches

TYPES = ["complaint.created", "complaint.updated", "sync.completed", "webhook.test"]
PATTERNS = ["complaint.*", "complaint.created", "*", "sync.*", "key.*"]
CONTRACTS = ["H0001", "H0002", "S0003"]


@dataclass(frozen=True)
class Fact:
    type: str
    payload: dict[str, Any]
    id: UUID = field(default_factory=uuid4)
    tenant_id: UUID | None = None


@dataclass(frozen=True)
class Endpoint:
    event_types: list[str]
    contracts: list[str]
    id: UUID = field(default_factory=uuid4)


payloads = st.one_of(
    st.just({}),
    st.builds(lambda c: {"contract": c}, st.sampled_from([*CONTRACTS, "h0001", "X9999"])),
    st.builds(lambda cs: {"contracts": cs}, st.lists(st.sampled_from(CONTRACTS), max_size=3)),
    st.builds(
        lambda c, cs: {"contract": c, "contracts": cs},
        st.sampled_from(CONTRACTS),
        st.lists(st.sampled_from(CONTRACTS), max_size=2),
    ),
)
facts = st.builds(Fact, st.sampled_from(TYPES), payloads)
endpoints = st.builds(
    Endpoint,
    st.lists(st.sampled_from(PATTERNS), max_size=3),
    st.lists(st.sampled_from(CONTRACTS), max_size=3),
)


@given(st.lists(facts, max_size=12), st.lists(endpoints, max_size=6))
def test_batch_matching_is_matches_for_every_pair(
    events: list[Fact], subscribers: list[Endpoint]
) -> None:
    expected = sorted(
        (str(e.id), str(s.id))
        for e in events
        for s in subscribers
        if matches(s.event_types, s.contracts, e)  # type: ignore[arg-type]
    )
    found = _matching(events, subscribers)  # type: ignore[arg-type]
    assert sorted((str(e.id), str(i)) for e, i in found) == expected


def test_an_event_about_two_contracts_reaches_an_endpoint_of_both_once() -> None:
    event = Fact("complaint.created", {"contracts": ["H0001", "H0002"]})
    both = Endpoint(["complaint.*"], ["H0001", "H0002"])
    other = Endpoint(["complaint.*"], ["S0003"])
    everyone = Endpoint(["*"], [])
    found = _matching([event], [both, other, everyone])  # type: ignore[list-item]
    assert sorted(str(i) for _, i in found) == sorted([str(both.id), str(everyone.id)])
