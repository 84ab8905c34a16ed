"""Review findings on the parts that need no database."""

from __future__ import annotations

import ipaddress

import pytest

from hub.webhooks.guard import AddressPolicy, BlockedAddress, address_class, url_problem
from hub.webhooks.sender import MAX_RETRY_AFTER_SECONDS, parse_retry_after

STRICT = AddressPolicy(allow_private_networks=False)


class TestRetryAfter:
    @pytest.mark.parametrize("value", ["9" * 400, "1" + "0" * 309])
    def test_a_number_too_big_for_a_float_is_capped_not_raised(self, value: str) -> None:
        assert parse_retry_after(value) == float(MAX_RETRY_AFTER_SECONDS)

    def test_a_huge_negative_number_is_no_wait(self) -> None:
        assert parse_retry_after("-" + "9" * 400) == 0.0


class TestHostNames:
    @pytest.mark.parametrize(
        "url",
        [
            "https://a..example.com/hook",
            "https://" + "a" * 64 + ".example.com/hook",
            "https://\u2024.example.com/hook",  # one dot leader: an empty label once mapped
        ],
    )
    def test_a_host_the_resolver_cannot_encode_is_refused(self, url: str) -> None:
        assert url_problem(url, http_hosts=frozenset(), policy=STRICT) is not None

    @pytest.mark.parametrize(
        "url",
        [
            "https://hooks.plan-a.example/ctm",
            "https://ex\u00e4mple.com/hook",
            "https://" + "a" * 63 + ".example.com/hook",
            "https://hooks.example.com./hook",
        ],
    )
    def test_ordinary_and_international_names_still_pass(self, url: str) -> None:
        assert url_problem(url, http_hosts=frozenset(), policy=STRICT) is None


class TestSiteLocal:
    @pytest.mark.parametrize("address", ["fec0::1", "feff:ffff::1", "fec0:1:2::3%eth0"])
    def test_deprecated_site_local_ipv6_is_refused_at_connect_time(self, address: str) -> None:
        # fec0::/10 (RFC 3879) is no global address, yet Python's is_private and is_global
        # both leave it out, so it passed as public.
        assert address_class(ipaddress.ip_address(address.split("%")[0])) == "private"
        with pytest.raises(BlockedAddress):
            STRICT.check(address)

    def test_a_site_local_literal_is_refused_at_registration(self) -> None:
        assert url_problem("https://[fec0::1]/hook", http_hosts=frozenset(), policy=STRICT)
