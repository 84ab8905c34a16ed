"""The SSRF guard's address classes and URL rules."""

from __future__ import annotations

import ipaddress

import pytest

from hub.webhooks.guard import AddressPolicy, BlockedAddress, address_class, url_problem

STRICT = AddressPolicy(allow_private_networks=False)
OPEN = AddressPolicy(allow_private_networks=True)


class TestAddressClass:
    @pytest.mark.parametrize(
        ("address", "kind"),
        [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("fd12:3456::1", "private"),
            ("169.254.10.10", "link-local"),
            ("fe80::1", "link-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("100.64.0.1", "cgnat"),
            ("100.127.255.254", "cgnat"),
            ("169.254.169.254", "cloud-metadata"),
            ("fd00:ec2::254", "cloud-metadata"),
            ("100.100.100.200", "cloud-metadata"),
            ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "cloud-metadata"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:7f00:1::", "loopback"),
            ("240.0.0.1", "reserved"),
        ],
    )
    def test_internal_addresses_are_named(self, address: str, kind: str) -> None:
        assert address_class(ipaddress.ip_address(address)) == kind

    @pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
    def test_public_addresses_pass(self, address: str) -> None:
        assert address_class(ipaddress.ip_address(address)) is None


class TestPolicy:
    @pytest.mark.parametrize(
        "address", ["127.0.0.1", "::1", "10.0.0.1", "100.64.0.1", "fe80::1", "::ffff:127.0.0.1"]
    )
    def test_strict_policy_refuses_internal_addresses(self, address: str) -> None:
        with pytest.raises(BlockedAddress):
            STRICT.check(address)

    def test_allowing_private_networks_lets_loopback_through(self) -> None:
        OPEN.check("127.0.0.1")
        OPEN.check("::1")

    @pytest.mark.parametrize("address", ["169.254.169.254", "224.0.0.1", "0.0.0.0"])  # noqa: S104
    def test_metadata_multicast_and_unspecified_stay_refused_even_when_open(
        self, address: str
    ) -> None:
        with pytest.raises(BlockedAddress):
            OPEN.check(address)


class TestUrlRules:
    def test_https_to_a_public_name_is_fine(self) -> None:
        assert (
            url_problem("https://hooks.plan.example/ctm", http_hosts=frozenset(), policy=STRICT)
            is None
        )

    def test_http_needs_an_allowed_host(self) -> None:
        problem = url_problem("http://hooks.plan.example/", http_hosts=frozenset(), policy=STRICT)
        assert problem is not None
        assert "https" in problem
        assert (
            url_problem(
                "http://hooks.plan.example/",
                http_hosts=frozenset({"hooks.plan.example"}),
                policy=STRICT,
            )
            is None
        )

    @pytest.mark.parametrize(
        "url",
        ["https://127.0.0.1/x", "https://[::1]/x", "https://localhost/x", "https://10.0.0.5/x",
         "https://169.254.169.254/latest/meta-data", "https://[::ffff:7f00:1]/x"],
    )  # fmt: skip
    def test_internal_literals_are_refused_at_registration(self, url: str) -> None:
        assert url_problem(url, http_hosts=frozenset(), policy=STRICT) is not None

    @pytest.mark.parametrize(
        "url", ["ftp://example.com/", "https://", "not a url", "https://user:pw@example.com/"]
    )
    def test_malformed_urls_are_refused(self, url: str) -> None:
        assert url_problem(url, http_hosts=frozenset(), policy=STRICT) is not None
