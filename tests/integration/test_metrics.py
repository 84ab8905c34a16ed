"""`GET /metrics`: off unless a token is set, this process's requests by route template,
and the platform's backlogs, keys and syncs, summed over tenants and naming none."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.audit.service import Actor
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID, uuid7_floor
from hub.events.service import record_event
from hub.keys import service as keys
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.settings import Settings, SettingsError, load_settings
from hub.syncs.models import RunOutcome, SyncRun
from hub.webhooks import delivery
from hub.webhooks.models import WebhookMessage
from hub.webhooks.schemas import EndpointCreate
from hub.webhooks.service import create_endpoint
from tests.integration.webhooks.support import principal_of, rules
from tests.support import Member, app_client, make_member, make_tenant

TOKEN = "scrape-me-0123456789abcdef"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}


def figures(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def scrape(settings: Settings, db: Database, redis: Any) -> httpx.Response:
    app = create_app(settings.model_copy(update={"metrics_token": TOKEN}), database=db, redis=redis)
    async with app_client(app) as client:
        return await client.get("/metrics", headers=SCRAPER)


@pytest.fixture
async def admin(session: AsyncSession) -> Member:
    tenant = await make_tenant(session, "metered-plan")
    member = await make_member(session, tenant, email="admin@metered.example")
    await session.commit()
    return member


class TestAccess:
    async def test_off_without_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert "HUB_METRICS_TOKEN" in response.json()["detail"]

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}],
    )
    async def test_refused_without_the_token(
        self, settings: Settings, db: Database, redis: Any, headers: dict[str, str]
    ) -> None:
        app = create_app(
            settings.model_copy(update={"metrics_token": TOKEN}), database=db, redis=redis
        )
        async with app_client(app) as client:
            response = await client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_a_tenant_token_does_not_open_it(
        self, settings: Settings, db: Database, redis: Any, admin: Member
    ) -> None:
        app = create_app(
            settings.model_copy(update={"metrics_token": TOKEN}), database=db, redis=redis
        )
        async with app_client(app) as client:
            response = await client.get("/metrics", headers=admin.headers)
        assert response.status_code == 401

    @pytest.mark.parametrize("token", ["short", "has a space in it 0123456789"])
    def test_a_weak_token_is_refused_at_start(self, tmp_path: Path, token: str) -> None:
        with pytest.raises(SettingsError, match="HUB_METRICS_TOKEN"):
            load_settings(data_dir=tmp_path, metrics_token=token)


class TestRequests:
    async def test_counted_by_route_template_with_every_status(
        self, settings: Settings, db: Database, redis: Any, admin: Member
    ) -> None:
        app = create_app(
            settings.model_copy(update={"metrics_token": TOKEN}), database=db, redis=redis
        )
        unknown = uuid4()
        async with app_client(app) as client:
            before = figures((await client.get("/metrics", headers=SCRAPER)).text)
            assert (
                await client.get(f"/api/v1/keys/{unknown}", headers=admin.headers)
            ).status_code == 404
            assert (await client.get("/api/v1/keys")).status_code == 401
            assert (await client.get("/no/such/path")).status_code == 404
            assert (await client.get("/api/v1/keys", headers=admin.headers)).status_code == 200
            text = (await client.get("/metrics", headers=SCRAPER)).text
        after = figures(text)

        def grew(route: str, status: str) -> float:
            key = (
                "hub_http_requests_total",
                (("method", "GET"), ("route", route), ("status", status)),
            )
            return after.get(key, 0.0) - before.get(key, 0.0)

        assert grew("/api/v1/keys/{key_id}", "404") == 1
        assert grew("/api/v1/keys", "401") == 1
        assert grew("/api/v1/keys", "200") == 1
        assert grew("unmatched", "404") == 1
        assert str(unknown) not in text  # ids never become labels
        count = (
            "hub_http_request_duration_seconds_count",
            (("method", "GET"), ("route", "/api/v1/keys")),
        )
        assert after[count] - before.get(count, 0.0) == 2


class TestPlatform:
    async def test_backlogs_keys_and_endpoints(
        self, settings: Settings, db: Database, redis: Any, session: AsyncSession, admin: Member
    ) -> None:
        before = figures((await scrape(settings, db, redis)).text)
        principal = principal_of(admin)
        tenant = TenantID(admin.tenant.id)
        await keys.add_contract(session, principal, number="H1234")
        created = []
        for key_id in ("KEY-ONE", "KEY-TWO"):
            data = KeyCreate(
                environment="sandbox",
                key_id=key_id,
                secret="s3cret-value",
                hpms_user_id="RP01",
                technical_poc=TechnicalPoc(name="Toni", email="toni@plan.example"),
                contracts=["H1234"],
                verify=False,
            )
            created.append(await keys.create_key(session, principal, data=data, verifier=None))
        await keys.report_compromise(
            session, tenant_id=tenant, key_id=created[1].id, actor=Actor.system("test")
        )
        endpoint, _ = await create_endpoint(
            session,
            principal,
            data=EndpointCreate(url="https://receiver.example/hook", event_types=["key.*"]),
            rules=rules(),
        )
        event = record_event(session, tenant, "key.rotated", {"contracts": ["H1234"]})
        await session.flush()
        await delivery.fan_out_many(session, [event])
        for age, outcome in (
            (timedelta(minutes=5), RunOutcome.SUCCEEDED),
            (timedelta(minutes=1), RunOutcome.RUNNING),
            (timedelta(hours=3), RunOutcome.SUCCEEDED),  # before the last hour
        ):
            started = utcnow() - age
            floor = uuid7_floor(started).int
            session.add(
                SyncRun(
                    id=UUID(int=floor | uuid4().int & 0xFFFF_FFFF_FFFF),
                    tenant_id=tenant,
                    api_key_id=created[0].id,
                    contract="H1234",
                    trigger="schedule",
                    window_start=started.date(),
                    window_end=started.date(),
                    started_at=started,
                    outcome=outcome,
                )
            )
        late = utcnow() - timedelta(minutes=10)
        await session.execute(
            update(WebhookMessage)
            .where(WebhookMessage.endpoint_id == endpoint.id)
            .values(next_attempt_at=late)
        )
        await session.commit()

        response = await scrape(settings, db, redis)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        after = figures(response.text)

        def grew(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert grew("hub_keys", environment="sandbox", status="active") == 1
        assert grew("hub_keys", environment="sandbox", status="compromised") == 1
        assert grew("hub_webhook_endpoints", state="ok") == 1
        assert grew("hub_webhook_messages_pending") == 1
        assert grew("hub_sync_runs_last_hour", outcome="succeeded") == 1
        assert grew("hub_sync_runs_last_hour", outcome="running") == 1
        compromised = (
            "hub_alerts_unresolved",
            (("kind", "key.compromised"), ("severity", "critical")),
        )
        assert after.get(compromised, 0) - before.get(compromised, 0) == 1
        assert value(after, "hub_webhook_oldest_due_age_seconds") >= 590
        assert grew("hub_outbox_undispatched_events") >= 1
        assert value(after, "hub_outbox_oldest_undispatched_age_seconds") >= 0
        # The serving key's pair has not synced yet.
        assert grew("hub_sync_pairs", environment="sandbox", state="never_synced") == 1
        assert value(after, "hub_resolutions_waiting", state="queued") >= 0
        assert value(after, "hub_metrics_snapshot_ok") == 1
        assert "metered" not in response.text
        assert "KEY-ONE" not in response.text

    async def test_a_database_that_does_not_answer_still_scrapes(
        self, settings: Settings, redis: Any, tmp_path: Path
    ) -> None:
        missing = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
        try:
            response = await scrape(settings, missing, redis)
        finally:
            await missing.dispose()
        assert response.status_code == 200
        found = figures(response.text)
        assert value(found, "hub_metrics_snapshot_ok") == 0
        assert ("hub_keys", (("environment", "sandbox"), ("status", "active"))) not in found
