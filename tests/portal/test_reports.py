"""The timeliness report page: the table per contract and timeframe, its period and basis
controls as the API takes them, errors beside their control, and its CSV for the browser."""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest

from hub.core.db import utcnow
from tests.integration.reports.test_timeliness import PERIOD, Seeded, day, seeded
from tests.portal.support import sign_in

__all__ = ["seeded"]  # the API tests' tenant: H1234 and S5678 complaints, on time and late
VIEWER = "viewer@timely.example"
PAGE = "/portal/reports/timeliness"


def cells(page: httpx.Response, contract: str, timeframe: str) -> list[str]:
    """The counts of one line of the table, as shown."""
    for row in page.text.split('<tr data-testid="line"')[1:]:
        found = re.findall(r"<td[^>]*>(.*?)</td>", row)
        shown = [re.sub(r"<[^>]+>", "", c).strip() for c in found]
        if shown[:2] == [contract, timeframe]:
            return shown[2:]
    raise AssertionError(f"no line for {contract} {timeframe}")


class TestTimelinessPage:
    async def test_a_table_per_contract_and_timeframe(
        self, portal: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        await sign_in(portal, VIEWER)
        page = await portal.get(PAGE, params=PERIOD)
        assert page.status_code == 200
        # complaints, on time, late, open overdue, open not due, awaiting CMS, %, median
        assert cells(page, "H1234", "immediate") == ["2", "1", "0", "1", "0", "1", "50.0 %", "1.0"]
        assert cells(page, "H1234", "standard")[:5] == ["3", "1", "1", "0", "1"]
        assert cells(page, "S5678", "both")[:4] == ["1", "0", "0", "1"]
        assert cells(page, "All contracts", "both")[0] == "6"
        assert f'name="from" value="{PERIOD["from"]}"' in page.text
        assert '<option value="due" selected>' in page.text

    async def test_defaults_to_production_this_month(
        self, portal: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        await sign_in(portal, VIEWER)
        page = await portal.get(PAGE)
        today = utcnow().date()
        assert f'name="from" value="{today.replace(day=1).isoformat()}"' in page.text
        assert f'name="to" value="{today.isoformat()}"' in page.text
        assert '<option value="production" selected>' in page.text

    async def test_by_received_date_and_environment(
        self, portal: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        await sign_in(portal, VIEWER)
        received = {"from": day(-2).isoformat(), "to": day(0).isoformat(), "basis": "received"}
        page = await portal.get(PAGE, params=received)
        assert cells(page, "All contracts", "both")[0] == "1"
        assert '<option value="received" selected>' in page.text
        sandbox = await portal.get(PAGE, params={**PERIOD, "environment": "sandbox"})
        assert cells(sandbox, "All contracts", "both")[0] == "1"

    @pytest.mark.parametrize(
        ("params", "field", "words"),
        [
            ({"from": "2026-02-01", "to": "2026-01-01"}, "to", "must not be before from"),
            ({"from": "2024-01-01", "to": "2026-01-01"}, "to", "at most 366 days"),
            ({"basis": "resolved"}, "basis", "must be one of due, received"),
            ({"environment": "staging"}, "environment", "must be one of"),
            ({"from": "yesterday"}, "from", "is not a date"),
        ],
    )
    async def test_a_bad_control_is_named_beside_it(
        self,
        portal: httpx.AsyncClient,
        seeded: Seeded,
        params: dict[str, str],
        field: str,
        words: str,
    ) -> None:
        await sign_in(portal, VIEWER)
        page = await portal.get(PAGE, params=params)
        assert page.status_code == 400
        [error] = re.findall(rf'data-testid="error-{field}">([^<]+)<', page.text)
        assert words in error
        assert 'data-testid="timeliness"' not in page.text

    async def test_the_csv_link_downloads_the_same_report(
        self, portal: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        await sign_in(portal, VIEWER)
        page = await portal.get(PAGE, params=PERIOD)
        [href] = re.findall(r'href="([^"]+)" data-testid="csv"', page.text)
        href = href.replace("&amp;", "&")
        assert href.startswith("/portal/reports/timeliness.csv?")
        answer = await portal.get(href)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["cache-control"] == "no-store"
        start, end = day(-30).strftime("%Y%m%d"), day(10).strftime("%Y%m%d")
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="timeliness-production-{start}-{end}.csv"'
        )
        by = {
            (r["contract"], r["timeframe"]): r
            for r in csv.DictReader(io.StringIO(answer.text.removeprefix("\ufeff")))
        }
        assert by[("H1234", "immediate")]["timely_percent"] == "50.0"
        assert by[("all", "all")]["complaints"] == "6"

    async def test_signed_out_the_page_and_its_csv_ask_to_sign_in(
        self, portal: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        for path in (PAGE, f"{PAGE}.csv"):
            answer = await portal.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/portal/login?next=")

    async def test_another_tenants_complaints_are_not_counted(
        self, portal: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        # The other tenant's production complaint falls in the period: six, not seven.
        await sign_in(portal, VIEWER)
        page = await portal.get(PAGE, params=PERIOD)
        assert cells(page, "All contracts", "both")[0] == "6"
        assert "other-plan" not in page.text
