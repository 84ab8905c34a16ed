"""The CTM client against the simulator: every row of section 4's error table, tokens,
Retry-After, the environment guard, protocol faults and streaming."""

from __future__ import annotations

import asyncio
import dataclasses
import tracemalloc
from datetime import date
from typing import Literal

import httpx
import pytest

from hub.ctm.client import CtmClient, CtmCredentials, CtmEnvironment, RetryPolicy, StaticSecret
from hub.ctm.errors import (
    ContractAccessDenied,
    CtmProtocolError,
    CtmUnavailable,
    EnvironmentMismatch,
    KeyRejected,
    RateLimited,
    TruncatedDownload,
    UploadOutcomeUnknown,
    UploadRefused,
)
from hub.ctm.layouts import Layout
from hub.ctm.simulator import ContractPlan, Faults, RunningSimulator, SimKey
from hub.ctm.upload import InvalidResolution, ResolutionRow
from hub.settings import load_settings
from tests.integration.ctm.conftest import (
    PRODUCTION_URL,
    TODAY,
    WINDOW,
    Clock,
    Sleeps,
    credentials_for,
    download_all,
    routes,
)
from tests.support import captured_logs


class TestTokens:
    async def test_token_is_exchanged_once_and_reused(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        await download_all(client, creds)
        await download_all(client, creds)
        assert routes(sim) == [("token", 200), ("download", 200), ("download", 200)]

    async def test_token_is_refreshed_at_80_percent_of_its_lifetime(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, clock: Clock
    ) -> None:
        sim.state.token_lifetime = 100
        first = await client.token(creds)
        clock.now += 79
        assert await client.token(creds) == first
        clock.now += 2  # 81 s: past 80 %
        second = await client.token(creds)
        assert second != first
        assert routes(sim) == [("token", 200), ("token", 200)]

    async def test_concurrent_callers_share_one_refresh(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.faults = Faults(latency_ms=50)
        results = await asyncio.gather(*(download_all(client, creds) for _ in range(8)))
        assert len({len(records) for records, _ in results}) == 1
        assert [r for r, _ in routes(sim)].count("token") == 1

    async def test_tokens_are_cached_per_key_version(
        self, sim: RunningSimulator, client: CtmClient, key: SimKey
    ) -> None:
        await client.token(credentials_for(key, version="v1"))
        await client.token(credentials_for(key, version="v2"))
        await client.token(credentials_for(key, version="v1"))
        assert routes(sim) == [("token", 200), ("token", 200)]

    async def test_consumer_id_bearer_and_token_cookie_ride_on_data_calls(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        await download_all(client, creds)
        download = sim.state.requests[-1]
        assert (download.route, download.key_id, download.had_cookie) == ("download", "key-1", True)

    async def test_expired_token_is_renewed_once(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        await client.token(creds)
        sim.state.expire_tokens()  # CMS forgot it before its stated expiry
        records, _ = await download_all(client, creds)
        assert records
        assert routes(sim) == [("token", 200), ("download", 401), ("token", 200), ("download", 200)]

    async def test_token_refused_twice_is_treated_as_403(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.faults = Faults(token_dies_after=0.0)  # every token dead on arrival
        with pytest.raises(ContractAccessDenied, match="contract H1234: token refused twice"):
            await download_all(client, creds)
        assert routes(sim) == [("token", 200), ("download", 401), ("token", 200), ("download", 401)]


class TestKeyRejected:
    async def test_wrong_secret_is_403_on_token(
        self, sim: RunningSimulator, client: CtmClient, key: SimKey
    ) -> None:
        wrong = dataclasses.replace(credentials_for(key), secret=StaticSecret("not-the-secret"))
        with pytest.raises(KeyRejected, match="key key-1: CMS refused the key"):
            await client.token(wrong)
        assert routes(sim) == [("token", 403)]

    async def test_deactivated_key_is_rejected(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.deactivate("key-1")
        with pytest.raises(KeyRejected):
            await download_all(client, creds)

    async def test_rotation_old_key_answers_403_and_new_one_keeps_contracts(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        await download_all(client, creds)  # a token is cached for the old key
        new = sim.state.rotate("key-1")
        with pytest.raises(KeyRejected):
            await download_all(client, creds)
        assert routes(sim)[-2:] == [("download", 401), ("token", 403)]
        records, _ = await download_all(client, credentials_for(new, version="v2"))
        assert new.contracts == {"H1234", "S5678"}
        assert records


class TestContractAccess:
    async def test_contract_outside_the_key_is_403_and_others_carry_on(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        with pytest.raises(ContractAccessDenied) as denied:
            await download_all(client, creds, "R5555")
        assert denied.value.contract == "R5555"
        records, _ = await download_all(client, creds, "H1234")
        assert records


class TestRateLimits:
    async def test_retry_after_is_honoured(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(retry_after=7, script=[("download", "429"), ("download", "429")])
        records, _ = await download_all(client, creds)
        assert records
        assert sleeps.delays == [7.0, 7.0]

    async def test_429_that_persists_raises_rate_limited(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(retry_after=3, rate_429=1.0)
        with pytest.raises(RateLimited) as limited:
            await download_all(client, creds)
        assert limited.value.retry_after == 3.0
        assert sleeps.delays == [3.0, 3.0, 3.0]  # 4 attempts, 3 waits

    async def test_retry_after_longer_than_we_wait_is_raised_at_once(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(retry_after=3600, script=[("download", "429")])
        with pytest.raises(RateLimited) as limited:
            await download_all(client, creds)
        assert limited.value.retry_after == 3600.0
        assert sleeps.delays == []


class TestUnavailable:
    async def test_5xx_is_retried_with_capped_exponential_backoff(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(script=[("download", "500"), ("download", "503")])
        records, _ = await download_all(client, creds)
        assert records
        assert sleeps.delays == [0.5, 1.0]

    async def test_5xx_that_persists_raises_unavailable(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(rate_500=1.0)
        with pytest.raises(CtmUnavailable, match="CMS answered 500"):
            await download_all(client, creds)
        assert sleeps.delays == [0.5, 1.0, 2.0]

    async def test_backoff_is_capped_and_jittered(self) -> None:
        policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
        assert [policy.backoff(n, lambda: 1.0) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
        assert policy.backoff(3, lambda: 0.25) == 1.25

    async def test_token_call_5xx_is_retried_too(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(script=[("token", "500")])
        await download_all(client, creds)
        assert routes(sim)[:2] == [("token", 500), ("token", 200)]
        assert sleeps.delays == [0.5]

    async def test_timeout_is_unavailable(
        self, sim: RunningSimulator, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(rate_500=0.0, hang_seconds=0.3, script=[(None, "hang")] * 4)
        async with CtmClient(
            CtmEnvironment.SANDBOX, base_url=sim.url, sleep=sleeps,
            timeout=httpx.Timeout(0.1), retry=RetryPolicy(attempts=2),
        ) as impatient:  # fmt: skip
            with pytest.raises(CtmUnavailable, match="ReadTimeout"):
                await impatient.token(creds)
        assert len(sleeps.delays) == 1

    async def test_egress_proxy_is_used(
        self, sim: RunningSimulator, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        # The simulator is reachable directly; a dead proxy in between must still fail.
        async with CtmClient(
            CtmEnvironment.SANDBOX, base_url=sim.url, proxy="http://127.0.0.1:9", sleep=sleeps
        ) as proxied:
            with pytest.raises(CtmUnavailable):
                await proxied.token(creds)
        assert sim.state.requests == []

    async def test_nothing_listening_is_unavailable(
        self, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        async with CtmClient(
            CtmEnvironment.SANDBOX, base_url="http://127.0.0.1:9", sleep=sleeps
        ) as nowhere:
            with pytest.raises(CtmUnavailable, match="ConnectError"):
                await nowhere.token(creds)
        assert len(sleeps.delays) == 3


class TestProtocolErrors:
    @pytest.mark.parametrize(
        ("fault", "message"),
        [
            ("html", "HTML page"),
            ("html_as_csv", "HTML page"),
            ("json", "application/json, not CSV"),
        ],
    )
    async def test_a_200_that_is_not_csv_is_a_protocol_error(
        self,
        sim: RunningSimulator,
        client: CtmClient,
        creds: CtmCredentials,
        fault: str,
        message: str,
    ) -> None:
        sim.state.faults = Faults(script=[("download", fault)])  # type: ignore[list-item]
        download = client.download_complaints(creds, "H1234", *(TODAY, TODAY))
        got = []
        with pytest.raises(CtmProtocolError, match=message):
            async for batch in download:
                got.extend(batch)
        assert got == []

    async def test_token_answer_without_a_token_is_a_protocol_error(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.faults = Faults(script=[("token", "json")])
        with pytest.raises(CtmProtocolError, match="without accessToken/expires"):
            await client.token(creds)

    async def test_upload_answered_2xx_with_html_is_in_doubt(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        # CMS took the request (2xx): whether it took the file cannot be read off the answer.
        sim.state.faults = Faults(script=[("upload", "html")])
        with pytest.raises(UploadOutcomeUnknown, match="answered without accepted/rejected"):
            await client.upload_resolutions(creds, [ResolutionRow("1", "H1234", TODAY, "x")])

    async def test_connection_cut_mid_download_is_truncated(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.contracts["H1234"] = ContractPlan(daily_min=20, daily_max=20)
        sim.state.faults = Faults(script=[("download", "cut")])
        download = client.download_complaints(creds, "H1234", date(2025, 2, 1), TODAY, batch_size=5)
        with pytest.raises(TruncatedDownload, match="contract H1234"):
            async for _ in download:
                pass  # a sync would stage these in its transaction, then roll back
        assert download.bytes_read > 0

    @pytest.mark.parametrize("mode", ["records", "rows"])
    async def test_a_download_cut_short_leaves_no_temporary_index_behind(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, mode: str
    ) -> None:
        sim.state.contracts["H1234"] = ContractPlan(daily_min=20, daily_max=20)
        sim.state.faults = Faults(script=[("download", "cut")])
        download = client.download_complaints(creds, "H1234", date(2025, 2, 1), TODAY, batch_size=5)
        seen = download._parser._seen
        seen._memory_keys = 2  # past two complaints the duplicate index is a temporary file
        with pytest.raises(TruncatedDownload):
            if mode == "records":
                async for _ in download:
                    pass
            else:
                async for batch in download.rows():
                    download.complete(batch)
        assert seen._directory is None, "the temporary directory was removed"


class TestEnvironmentGuard:
    def test_sandbox_client_refuses_the_configured_production_url(self) -> None:
        with pytest.raises(EnvironmentMismatch, match="is the production CTM URL"):
            CtmClient(
                CtmEnvironment.SANDBOX,
                base_url=PRODUCTION_URL + "/",
                other_environment_url=PRODUCTION_URL,
            )

    @pytest.mark.parametrize(
        ("environment", "url"),
        [
            (CtmEnvironment.SANDBOX, "https://HPMS.cms.gov"),
            (CtmEnvironment.SANDBOX, "https://hpms.cms.gov:443/"),
            (CtmEnvironment.PRODUCTION, "https://hpmssandbox.cms.gov"),
        ],
    )
    def test_cms_published_url_of_the_other_environment_is_always_refused(
        self, environment: CtmEnvironment, url: str
    ) -> None:
        with pytest.raises(EnvironmentMismatch):
            CtmClient(environment, base_url=url)

    async def test_for_environment_uses_the_settings_url(self) -> None:
        settings = load_settings(
            ctm_sandbox_url="http://127.0.0.1:9100", ctm_production_url=PRODUCTION_URL
        )
        sandbox = CtmClient.for_environment(settings, CtmEnvironment.SANDBOX)
        production = CtmClient.for_environment(settings, CtmEnvironment.PRODUCTION)
        assert (sandbox.base_url, production.base_url) == ("http://127.0.0.1:9100", PRODUCTION_URL)
        await sandbox.aclose()
        await production.aclose()

    def test_settings_pointing_both_environments_at_one_url_are_refused(self) -> None:
        settings = load_settings(
            ctm_sandbox_url="http://127.0.0.1:9100", ctm_production_url="http://127.0.0.1:9100"
        )
        with pytest.raises(EnvironmentMismatch):
            CtmClient.for_environment(settings, CtmEnvironment.PRODUCTION)

    async def test_production_key_never_reaches_a_sandbox_client(
        self, sim: RunningSimulator, client: CtmClient, key: SimKey
    ) -> None:
        production_key = credentials_for(key, environment=CtmEnvironment.PRODUCTION)
        with pytest.raises(EnvironmentMismatch, match="is a production key"):
            await client.token(production_key)
        with pytest.raises(EnvironmentMismatch):
            client.download_complaints(production_key, "H1234", TODAY, TODAY)
        with pytest.raises(EnvironmentMismatch):
            await client.upload_resolutions(production_key, [])
        assert sim.state.requests == []

    async def test_a_sandbox_key_is_refused_by_a_production_cms(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.environment = "production"
        with pytest.raises(KeyRejected):
            await client.token(creds)


class TestDownload:
    async def test_records_are_typed_and_the_layout_recorded(
        self, client: CtmClient, creds: CtmCredentials
    ) -> None:
        records, summary = await download_all(client, creds)
        assert summary.layout is Layout.CURRENT
        assert summary.rows_imported == len(records) > 0
        assert all(r.contract_id == "H1234" for r in records)
        assert all(date(2025, 1, 20) <= r.received_date <= TODAY for r in records)

    async def test_legacy_file_version_imports(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.file_version = Layout.LEGACY
        records, summary = await download_all(client, creds)
        assert summary.layout is Layout.LEGACY
        assert records
        assert "CMS_LEAD_CHANGE_REQUESTS" in records[0].values

    async def test_later_downloads_find_new_and_updated_complaints(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        before, _ = await download_all(client, creds, window=(date(2025, 2, 1), TODAY))
        sim.state.advance(4)
        since = TODAY + __import__("datetime").timedelta(days=1)
        after, _ = await download_all(client, creds, window=(since, sim.state.today()))
        known = {r.complaint_id: r for r in before}
        new = [r for r in after if r.complaint_id not in known]
        updated = [r for r in after if r.complaint_id in known]
        assert new
        assert updated
        assert any(r.values != known[r.complaint_id].values for r in updated)

    async def test_a_download_can_be_stopped_early_and_not_iterated_twice(
        self, client: CtmClient, creds: CtmCredentials
    ) -> None:
        download = client.download_complaints(creds, "H1234", *WINDOW, batch_size=1)
        async for batch in download:
            assert len(batch) == 1
            break
        await download.aclose()
        with pytest.raises(RuntimeError, match="iterated once"):
            download.__aiter__()
        records, _ = await download_all(client, creds)  # the connection went back to the pool
        assert records

    async def test_bad_arguments_are_refused_before_any_request(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        with pytest.raises(ValueError, match="not a contract number"):
            client.download_complaints(creds, "H12", TODAY, TODAY)
        with pytest.raises(ValueError, match="start date is after end date"):
            client.download_complaints(creds, "H1234", TODAY, date(2025, 1, 1))
        assert sim.state.requests == []


class TestStreaming:
    async def test_a_download_larger_than_the_memory_allowed_is_processed(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        sim.state.contracts["H1234"] = ContractPlan(daily_min=60, daily_max=60, summary_chars=4000)
        allowed = 3 * 1024 * 1024  # the simulator's own buffers count against it too
        tracemalloc.start()
        try:
            download = client.download_complaints(
                creds, "H1234", date(2025, 2, 1), TODAY, batch_size=50
            )
            count = 0
            async for batch in download:
                count += len(batch)  # a sync would upsert and drop the batch
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert download.bytes_read > 2 * allowed
        assert peak < allowed
        assert count == download.summary.rows_imported > 1000


class TestUpload:
    async def test_accepted_and_rejected_rows_come_back_and_the_upload_is_kept(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        records, _ = await download_all(client, creds)
        known = records[0]
        summary = 'Called member; "refund" issued,\r\nletter sent'
        result = await client.upload_resolutions(
            creds,
            [
                ResolutionRow(
                    known.complaint_id, "H1234", TODAY, summary, complainant_satisfied=True
                ),
                ResolutionRow("999999", "H1234", TODAY, "no such complaint"),
                ResolutionRow(known.complaint_id, "S5678", TODAY, "wrong contract"),
            ],
        )
        assert result.accepted == [known.complaint_id]
        assert [(r.complaint_id, r.errors) for r in result.rejected] == [
            ("999999", ["complaint 999999 is not a complaint of H1234"]),
            (known.complaint_id, [f"complaint {known.complaint_id} is not a complaint of S5678"]),
        ]
        (upload,) = sim.state.uploads
        assert upload.rows[0]["RESOLUTION_SUMMARY"] == summary
        again, _ = await download_all(client, creds)
        resolved = next(r for r in again if r.complaint_id == known.complaint_id)
        assert resolved.text("RESOLUTION_SUMMARY") == summary

    async def test_a_row_cms_would_refuse_is_refused_before_sending(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials
    ) -> None:
        with pytest.raises(InvalidResolution, match="RESOLUTION_DATE is missing"):
            await client.upload_resolutions(creds, [ResolutionRow("1", "H1234", None, "x")])
        assert sim.state.requests == []

    async def test_upload_is_retried_after_a_500(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(script=[("upload", "500")])
        result = await client.upload_resolutions(creds, [ResolutionRow("1", "H1234", TODAY, "x")])
        assert [r.complaint_id for r in result.rejected] == ["1"]
        assert sleeps.delays == [0.5]

    @pytest.mark.parametrize("status", ["502", "504"])
    async def test_an_upload_a_gateway_gave_up_on_is_in_doubt_not_sent_again(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps,
        status: Literal["502", "504"],
    ) -> None:  # fmt: skip
        sim.state.faults = Faults(script=[("upload", status)])
        with pytest.raises(UploadOutcomeUnknown, match=f"a gateway answered {status}"):
            await client.upload_resolutions(creds, [ResolutionRow("1", "H1234", TODAY, "x")])
        assert routes(sim)[-1] == ("upload", int(status))
        assert sleeps.delays == []

    @pytest.mark.parametrize("status", ["400", "422"])
    async def test_an_upload_refused_whole_says_what_cms_said_and_is_not_sent_again(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps,
        status: Literal["400", "422"],
    ) -> None:  # fmt: skip
        sim.state.faults = Faults(script=[("upload", status)])
        with pytest.raises(UploadRefused) as refused:
            await client.upload_resolutions(creds, [ResolutionRow("1", "H1234", TODAY, "x")])
        assert refused.value.status == int(status)
        assert refused.value.detail == "The file does not match the plan upload layout"
        assert str(refused.value) == (
            f"CMS refused the whole upload file ({status}): "
            "The file does not match the plan upload layout"
        )
        assert [s for r, s in routes(sim) if r == "upload"] == [int(status)]
        assert sleeps.delays == []

    async def test_a_download_a_gateway_gave_up_on_is_asked_again(
        self, sim: RunningSimulator, client: CtmClient, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(script=[("download", "504")])
        await download_all(client, creds)
        assert [s for r, s in routes(sim) if r == "download"] == [504, 200]

    async def test_an_upload_whose_answer_is_lost_is_not_sent_again(
        self, sim: RunningSimulator, creds: CtmCredentials, sleeps: Sleeps
    ) -> None:
        sim.state.faults = Faults(hang_seconds=0.5, script=[("upload", "lost_answer")])
        async with CtmClient(
            CtmEnvironment.SANDBOX, base_url=sim.url, sleep=sleeps,
            timeout=httpx.Timeout(0.2), retry=RetryPolicy(attempts=3),
        ) as impatient:  # fmt: skip
            with pytest.raises(UploadOutcomeUnknown, match="ReadTimeout"):
                await impatient.upload_resolutions(creds, [ResolutionRow("1", "H1234", TODAY, "x")])
        assert len(sim.state.uploads) == 1, "CMS has it once"
        assert sleeps.delays == [], "and it was not sent again"

    @pytest.mark.parametrize(
        ("error", "sent_again"), [(httpx.ConnectError, True), (httpx.ReadError, False)]
    )
    async def test_only_an_upload_that_never_left_is_sent_again(
        self,
        sim: RunningSimulator,
        creds: CtmCredentials,
        sleeps: Sleeps,
        error: type[httpx.TransportError],
        sent_again: bool,
    ) -> None:
        transport = _FailsFirstUpload(error)
        async with CtmClient(
            CtmEnvironment.SANDBOX, base_url=sim.url, sleep=sleeps, transport=transport
        ) as client:
            rows = [ResolutionRow("1", "H1234", TODAY, "x")]
            if sent_again:
                await client.upload_resolutions(creds, rows)
                assert len(sleeps.delays) == 1
            else:
                with pytest.raises(UploadOutcomeUnknown, match="ReadError"):
                    await client.upload_resolutions(creds, rows)
                assert sleeps.delays == []
        assert len(sim.state.uploads) == int(sent_again)


class _FailsFirstUpload(httpx.AsyncBaseTransport):
    """The network to the simulator, failing the first upload with `error` before it
    reaches CMS (a client cannot tell a read error from one after CMS took the file)."""

    def __init__(self, error: type[httpx.TransportError]) -> None:
        self.inner, self.error, self.failed = httpx.AsyncHTTPTransport(), error, False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/upload") and not self.failed:
            self.failed = True
            raise self.error("failed", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class TestLogs:
    async def test_request_logs_carry_key_contract_status_duration_and_no_secret(
        self, client: CtmClient, creds: CtmCredentials
    ) -> None:
        with captured_logs() as logs:
            token = await client.token(creds)
            await download_all(client, creds)
        assert [entry["event"] for entry in logs] == ["ctm token", "ctm download"]
        for entry in logs:
            assert set(entry) == {
                "event",
                "log_level",
                "key_id",
                "contract",
                "status",
                "duration_ms",
            }
        assert (logs[1]["key_id"], logs[1]["contract"], logs[1]["status"]) == (
            "key-1",
            "H1234",
            200,
        )
        assert "secret-1" not in repr(logs)
        assert token not in repr(logs)
