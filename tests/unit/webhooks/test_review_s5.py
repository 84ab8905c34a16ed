"""Review findings on the parts that need no database."""

from __future__ import annotations

import pytest

from hub.webhooks.sender import MAX_RETRY_AFTER_SECONDS, parse_retry_after


class TestRetryAfter:
    @pytest.mark.parametrize("value", ["9" * 400, "1" + "0" * 309])
    def test_a_number_too_big_for_a_float_is_capped_not_raised(self, value: str) -> None:
        assert parse_retry_after(value) == float(MAX_RETRY_AFTER_SECONDS)

    def test_a_huge_negative_number_is_no_wait(self) -> None:
        assert parse_retry_after("-" + "9" * 400) == 0.0
