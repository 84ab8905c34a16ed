"""Primary keys are time-ordered UUIDv7s."""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hub.core.ids import uuid7, uuid7_floor
from tests.forks import made_in_a_child


class TestUuid7:
    def test_version_and_variant(self) -> None:
        ident = uuid7()
        assert ident.version == 7
        assert ident.variant == "specified in RFC 4122"

    def test_ids_made_in_a_row_keep_increasing(self) -> None:
        made = [uuid7() for _ in range(50_000)]
        assert made == sorted(made)
        assert len(set(made)) == len(made)

    def test_timestamp_is_now(self) -> None:
        millis = uuid7().int >> 80
        assert abs(millis - time.time() * 1000) < 5_000

    def test_equals_the_same_uuid_built_the_standard_way(self) -> None:
        ident = uuid7()
        same = UUID(str(ident))
        assert same == ident
        assert hash(same) == hash(ident)
        assert same.bytes == ident.bytes
        assert pickle.loads(pickle.dumps(ident)) == ident  # noqa: S301 - our own bytes

    def test_a_forked_child_never_reuses_the_parents_randomness(self) -> None:
        uuid7()  # the parent now holds a block of random bits
        child = set(made_in_a_child(lambda: uuid7().bytes[8:], 500))
        parent = {uuid7().bytes[8:] for _ in range(500)}
        assert len(child) == 500
        assert not child & parent


class TestUuid7Floor:
    def test_bounds_the_ids_made_from_then_on(self) -> None:
        before = uuid7()
        time.sleep(0.003)
        moment = datetime.now(UTC)
        after = [uuid7() for _ in range(1000)]
        floor = uuid7_floor(moment)
        assert floor.version == 7
        assert before < floor
        assert all(floor <= made for made in after)
        assert str(before) < str(floor) <= min(str(m) for m in after)  # as text, too
        assert uuid7_floor(moment - timedelta(milliseconds=1)) < floor
