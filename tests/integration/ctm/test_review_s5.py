"""Defects found by the session-5 review of the CTM client, each proven here before its fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from hub.ctm.client import CtmClient, CtmCredentials, CtmEnvironment
from hub.ctm.errors import EnvironmentMismatch, RateLimited
from hub.ctm.simulator import Faults, RunningSimulator
from tests.integration.ctm.conftest import Sleeps, download_all


class _RetryAfterSaid(httpx.AsyncBaseTransport):
    """The network to the simulator, with CMS's 429 answers carrying `said` as Retry-After."""

    def __init__(self, said: str) -> None:
        self.inner, self.said = httpx.AsyncHTTPTransport(), said

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if response.status_code == 429:
            response.headers["Retry-After"] = self.said
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _client(sim: RunningSimulator, sleeps: Sleeps, said: str) -> CtmClient:
    return CtmClient(
        CtmEnvironment.SANDBOX, base_url=sim.url, sleep=sleeps, jitter=lambda: 1.0,
        transport=_RetryAfterSaid(said),
    )  # fmt: skip


class TestRetryAfter:
    async def test_an_http_date_is_honoured_not_replaced_by_our_short_backoff(
        self, sim: RunningSimulator, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        """RFC 9110 lets Retry-After be an HTTP-date; the client fell back to its own 0.5 s
        backoff and hammered CMS, which had asked for two minutes."""
        sim.state.faults = Faults(script=[("download", "429")])
        said = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
        async with _client(sim, sleeps, said) as client:
            records, _ = await download_all(client, creds)
        assert records
        (delay,) = sleeps.delays
        assert 100 <= delay <= 121

    async def test_an_http_date_in_the_past_means_now(
        self, sim: RunningSimulator, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(script=[("download", "429")])
        said = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
        async with _client(sim, sleeps, said) as client:
            await download_all(client, creds)
        assert sleeps.delays == [0.0]

    @pytest.mark.parametrize("said", ["1e400", "9" * 400, "inf", "100000000000000"])
    async def test_an_absurd_value_is_capped_so_the_job_can_defer_by_it(
        self, sim: RunningSimulator, creds: CtmCredentials, sleeps: Sleeps, said: str
    ) -> None:
        """An infinite or astronomic Retry-After reached the sync job as is, and
        `timedelta(seconds=...)` overflowed there: the job crashed instead of deferring."""
        sim.state.faults = Faults(script=[("download", "429")])
        async with _client(sim, sleeps, said) as client:
            with pytest.raises(RateLimited) as limited:
                await download_all(client, creds)
        retry_after = limited.value.retry_after
        assert retry_after is not None
        assert timedelta(seconds=retry_after) <= timedelta(days=1)
        assert sleeps.delays == []

    async def test_nan_is_no_answer(
        self, sim: RunningSimulator, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(script=[("download", "429")])
        async with _client(sim, sleeps, "nan") as client:
            await download_all(client, creds)
        assert sleeps.delays == [0.5]  # our own backoff


class TestEnvironmentGuard:
    """The guard compared scheme, host and port: the other environment's CMS host reached
    over http, or written with the DNS root's trailing dot, was let through, and a sandbox
    key's secret went to production's host in the token call."""

    @pytest.mark.parametrize(
        ("environment", "url"),
        [
            (CtmEnvironment.SANDBOX, "http://hpms.cms.gov"),
            (CtmEnvironment.SANDBOX, "https://hpms.cms.gov./"),
            (CtmEnvironment.SANDBOX, "https://hpms.cms.gov:8443"),
            (CtmEnvironment.PRODUCTION, "http://hpmssandbox.cms.gov"),
            (CtmEnvironment.PRODUCTION, "https://HPMSSANDBOX.cms.gov."),
        ],
    )
    def test_the_other_environments_cms_host_is_refused_however_written(
        self, environment: CtmEnvironment, url: str
    ) -> None:
        with pytest.raises(EnvironmentMismatch):
            CtmClient(environment, base_url=url)

    def test_the_configured_other_url_with_a_trailing_dot_is_refused(self) -> None:
        with pytest.raises(EnvironmentMismatch):
            CtmClient(
                CtmEnvironment.SANDBOX,
                base_url="https://hpms.example.test./",
                other_environment_url="https://hpms.example.test",
            )

    async def test_two_local_simulators_on_other_ports_still_work(self) -> None:
        sandbox = CtmClient(
            CtmEnvironment.SANDBOX,
            base_url="http://127.0.0.1:9100",
            other_environment_url="http://127.0.0.1:9101",
        )
        await sandbox.aclose()
