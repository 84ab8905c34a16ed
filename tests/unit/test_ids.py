"""Primary keys are time-ordered UUIDv7s."""

from __future__ import annotations

import time

from hub.core.ids import uuid7


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
