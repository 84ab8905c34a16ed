"""One download into complaints, against a CMS that serves exactly the bytes a test writes:
what a re-sync skips, how a file written differently is taken, which row of a complaint
that appears twice wins, and what a download that fails halfway leaves behind."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from hub.complaints import bulk
from hub.complaints.models import Complaint, ComplaintChange
from hub.core.db import Database, utcnow
from hub.ctm import modeled
from hub.ctm.client import CtmClient, CtmEnvironment, RetryPolicy
from hub.ctm.layouts import Layout
from hub.ctm.simulator import data
from hub.events.models import Event
from hub.keys import service as keys
from hub.keys.models import ApiKey, Environment
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome
from tests.support import Member, make_member, make_tenant
from tests.unit.ctm.files import full_file, good_row

NAMES = [column.name for column in data.LAYOUT_COLUMNS[Layout.CURRENT]]


def minimal_quoting(rows: list[dict[str, str]]) -> bytes:
    """The same file as `full_file`, quoting only where CSV needs it, LF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(data.header(Layout.CURRENT))
    for row in rows:
        writer.writerow([row.get(name, "") for name in NAMES])
    return out.getvalue().encode()


@dataclass
class Cms:
    """Serves `body` for every download; `cut_after` bytes, then a broken connection."""

    body: bytes = b""
    cut_after: int | None = None
    downloads: int = 0
    chunk: int = 256

    def transport(self) -> httpx.MockTransport:
        async def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == modeled.TOKEN_PATH:
                return httpx.Response(200, json={"accessToken": "t", "expires": 1800})
            self.downloads += 1
            body, cut = self.body, self.cut_after

            async def stream() -> AsyncIterator[bytes]:
                for start in range(0, len(body), self.chunk):
                    if cut is not None and start >= cut:
                        raise httpx.ReadError("connection reset")
                    yield body[start : start + self.chunk]

            return httpx.Response(200, headers={"Content-Type": "text/csv"}, content=stream())

        return httpx.MockTransport(handler)


@dataclass
class Setup:
    db: Database
    cms: Cms
    member: Member
    key: ApiKey
    client: CtmClient
    policy: syncs.SyncPolicy = field(default_factory=syncs.SyncPolicy)

    async def sync(self, body: bytes, **cms: Any) -> syncs.SyncResult:
        self.cms.body = body
        for name, value in cms.items():
            setattr(self.cms, name, value)
        async with self.db.transaction() as session:  # every sync asks for the same window
            await session.execute(text("UPDATE sync_cursors SET synced_through = NULL"))
        return await syncs.run_sync(
            self.db, {CtmEnvironment.SANDBOX: self.client}, tenant_id=self.member.tenant_id,
            key_id=self.key.id, contract="H1234", policy=self.policy,
        )  # fmt: skip

    async def scalar(self, statement: Any) -> Any:
        async with self.db.transaction(read_only=True) as session:
            return await session.scalar(statement)

    async def stamps(self, column: Any = Complaint.updated_at) -> dict[str, Any]:
        async with self.db.transaction(read_only=True) as session:
            rows = await session.execute(select(Complaint.complaint_id, column))
            return {complaint_id: stamp for complaint_id, stamp in rows}

    async def comments(self, complaint_id: str) -> str:
        from hub.complaints.service import open_phi
        from hub.core import crypto

        async with self.db.transaction(read_only=True) as session:
            complaint = await session.scalar(
                select(Complaint).where(Complaint.complaint_id == complaint_id)
            )
            assert complaint is not None
            cipher = await crypto.cipher_for(session, self.member.tenant_id)
            return str(open_phi(cipher, complaint)["CMS_COMMENTS"])


@pytest.fixture
async def setup(committed_db: Database) -> AsyncIterator[Setup]:
    cms = Cms()
    client = CtmClient(
        CtmEnvironment.SANDBOX, base_url="http://cms.test", transport=cms.transport(),
        retry=RetryPolicy(attempts=1),
    )  # fmt: skip
    async with committed_db.transaction() as session:
        member = await make_member(session, await make_tenant(session, "acme"), email="rp@a.test")
        await keys.add_contract(session, member.principal, number="H1234")
        key = await keys.create_key(
            session, member.principal,
            data=KeyCreate(
                environment="sandbox", key_id="K1", secret="s", hpms_user_id="ACME01",
                technical_poc=TechnicalPoc("Pat", "pat@a.test"), contracts=["H1234"],
                verify=False,
            ),
            verifier=None,
        )  # fmt: skip
    try:
        yield Setup(committed_db, cms, member, key, client, syncs.SyncPolicy(batch_size=3))
    finally:
        await client.aclose()


def rows(count: int, **changes: dict[str, str]) -> list[dict[str, str]]:
    """`count` complaints 1..count; `changes` by complaint id (as a string key `c<id>`)."""
    made = []
    for n in range(1, count + 1):
        row = good_row(str(n), RECEIVED_DATE=_today(), CMS_COMMENTS=f'comment {n}, "quoted"')
        row.update(changes.get(f"c{n}", {}))
        made.append(row)
    return made


def _today() -> str:
    return date.today().strftime("%m/%d/%Y")


async def count(setup: Setup, model: Any, *where: Any) -> int:
    return int(await setup.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def updates(setup: Setup) -> list[Event]:
    async with setup.db.transaction(read_only=True) as session:
        found = await session.scalars(select(Event).where(Event.type == "complaint.updated"))
        return list(found.all())


async def test_events_carry_identifiers_and_metadata_never_phi(setup: Setup) -> None:
    listed = rows(2, c2={"ISSUE_LEVEL": "Immediate Need", "ASSIGNMENT_DATE": "01/02/2026"})
    await setup.sync(full_file(Layout.CURRENT, listed))
    async with setup.db.transaction(read_only=True) as session:
        created = (
            await session.scalars(
                select(Event).where(Event.type == "complaint.created").order_by(Event.id)
            )
        ).all()
    due = date.today() + timedelta(days=7)
    assert [e.payload for e in created] == [
        {"complaint_id": "1", "contract": "H1234", "environment": "sandbox",
         "issue_level": "Standard", "due_date": due.isoformat()},
        {"complaint_id": "2", "contract": "H1234", "environment": "sandbox",
         "issue_level": "Immediate Need", "due_date": "2026-01-04"},
    ]  # fmt: skip
    assert all(e.tenant_id == setup.member.tenant_id for e in created)
    listed[0] = dict(listed[0], CMS_COMMENTS="other words")
    await setup.sync(full_file(Layout.CURRENT, listed))
    (updated,) = await updates(setup)
    assert updated.payload == {
        "complaint_id": "1", "contract": "H1234", "environment": "sandbox",
        "issue_level": "Standard", "due_date": due.isoformat(), "changed": ["phi"],
    }  # fmt: skip


class TestResync:
    async def test_unchanged_rows_are_skipped_and_nothing_is_written(self, setup: Setup) -> None:
        first = await setup.sync(full_file(Layout.CURRENT, rows(8)))
        assert (first.new, first.changed, first.unchanged) == (8, 0, 0)
        before = await setup.stamps()
        again = await setup.sync(full_file(Layout.CURRENT, rows(8)))
        assert (again.new, again.changed, again.unchanged) == (0, 0, 8)
        assert await setup.stamps() == before
        assert await count(setup, Event, Event.type == "complaint.updated") == 0

    async def test_one_changed_row_is_one_update_naming_its_column(self, setup: Setup) -> None:
        await setup.sync(full_file(Layout.CURRENT, rows(8)))
        result = await setup.sync(
            full_file(Layout.CURRENT, rows(8, c5={"ISSUE_LEVEL": "Immediate Need"}))
        )
        assert (result.new, result.changed, result.unchanged) == (0, 1, 7)
        changed_at = await setup.stamps(Complaint.last_changed_at)
        assert changed_at["5"] > changed_at["4"]
        (event,) = await updates(setup)
        assert event.payload["complaint_id"] == "5"
        assert event.payload["changed"] == ["ISSUE_LEVEL"]
        assert await count(setup, ComplaintChange) == 1

    async def test_a_file_written_differently_with_the_same_values_reports_nothing(
        self, setup: Setup
    ) -> None:
        await setup.sync(full_file(Layout.CURRENT, rows(8)))
        changed_at = await setup.stamps(Complaint.last_changed_at)
        requoted = await setup.sync(minimal_quoting(rows(8)))
        assert (requoted.new, requoted.changed, requoted.unchanged) == (0, 0, 8)
        assert await setup.stamps(Complaint.last_changed_at) == changed_at
        assert await count(setup, Event, Event.type == "complaint.updated") == 0
        assert await count(setup, ComplaintChange) == 0
        # The stored fingerprints now match the new writing: the next sync skips every row.
        before = await setup.stamps()
        assert (await setup.sync(minimal_quoting(rows(8)))).unchanged == 8
        assert await setup.stamps() == before

    async def test_a_phi_change_is_reported_without_its_value(self, setup: Setup) -> None:
        await setup.sync(full_file(Layout.CURRENT, rows(4)))
        await setup.sync(full_file(Layout.CURRENT, rows(4, c2={"CMS_COMMENTS": "new words"})))
        assert await setup.comments("2") == "new words"
        (event,) = await updates(setup)
        assert event.payload["changed"] == ["phi"]
        assert "new words" not in str(event.payload)


class TestDuplicates:
    @pytest.mark.parametrize("apart", [1, 5], ids=["same batch", "later batch"])
    async def test_the_last_row_of_a_complaint_wins(self, setup: Setup, apart: int) -> None:
        await setup.sync(full_file(Layout.CURRENT, rows(8)))
        listed = rows(8)
        earlier = dict(listed[1], CMS_COMMENTS="an earlier version")
        listed.insert(2, earlier)  # complaint 2 as it was, then as it is now
        listed.insert(2 + apart, dict(listed[1]))
        del listed[1]
        result = await setup.sync(full_file(Layout.CURRENT, listed))
        assert result.outcome is RunOutcome.SUCCEEDED
        assert await setup.comments("2") == 'comment 2, "quoted"'
        assert await count(setup, Complaint) == 8

    async def test_a_new_complaint_twice_in_one_file_is_one_complaint(self, setup: Setup) -> None:
        listed = rows(6)
        listed.append(dict(listed[0], CMS_COMMENTS="second sighting"))
        result = await setup.sync(full_file(Layout.CURRENT, listed))
        assert result.outcome is RunOutcome.SUCCEEDED
        assert await count(setup, Complaint) == 6
        assert await setup.comments("1") == "second sighting"


class TestFailureHalfway:
    async def test_a_download_broken_halfway_imports_nothing_and_the_next_sync_works(
        self, setup: Setup
    ) -> None:
        body = full_file(Layout.CURRENT, rows(40))
        broken = await setup.sync(body, cut_after=len(body) // 2)
        assert broken.outcome is RunOutcome.FAILED
        assert await count(setup, Complaint) == 0
        assert await count(setup, Event, Event.type == "complaint.created") == 0
        whole = await setup.sync(body, cut_after=None)
        assert (whole.outcome, whole.new) == (RunOutcome.SUCCEEDED, 40)
        assert await count(setup, Event, Event.type == "complaint.created") == 40


async def test_stored_fingerprints_are_index_probes_whatever_the_statistics(
    setup: Setup,
) -> None:
    """A running import's rows are uncommitted, so statistics never count them: the
    lookup must not be planned as a join over the contract's every row."""
    if setup.db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL query plan")
    await setup.sync(full_file(Layout.CURRENT, rows(30)))
    async with setup.db.engine.connect() as connection:
        await connection.execute(text("ANALYZE complaints"))
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        arguments = (setup.member.tenant_id, "H1234", ["1", "2", "3"], "sandbox")
        plan = await driver.fetch("EXPLAIN " + bulk._STORED, *arguments)
        # A table this small may be read whole for each probe; the probe is what matters,
        # and that the index serves it (as it does once the table is any bigger).
        await driver.execute("SET enable_seqscan = off")
        indexed = await driver.fetch("EXPLAIN " + bulk._STORED, *arguments)
        await driver.execute("RESET enable_seqscan")
    shape = "\n".join(row[0] for row in plan)
    assert shape.startswith("Nested Loop"), shape
    assert "Limit" in shape
    assert "Hash" not in shape
    indexed_shape = "\n".join(row[0] for row in indexed)
    # An index scan or a bitmap one, whichever the planner costs lower: the unique index.
    assert "uq_complaints_tenant_id_environment_contract_complaint_id" in indexed_shape
    assert "Seq Scan" not in indexed_shape
    assert "Hash" not in indexed_shape


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 500])
async def test_every_batch_is_written_whatever_the_batching(setup: Setup, batch_size: int) -> None:
    """Batches are processed one behind and written two behind: none may be lost or run
    out of order, whatever the number of batches and the size of the last one."""
    setup.policy = syncs.SyncPolicy(batch_size=batch_size)
    first = await setup.sync(full_file(Layout.CURRENT, rows(10)))
    assert (first.new, first.changed, first.unchanged) == (10, 0, 0)
    assert await count(setup, Complaint) == 10
    assert await count(setup, Event, Event.type == "complaint.created") == 10
    changes = {f"c{n}": {"ISSUE_LEVEL": "Immediate Need"} for n in (1, 5, 10)}
    second = await setup.sync(full_file(Layout.CURRENT, rows(12, **changes)))
    assert (second.new, second.changed, second.unchanged) == (2, 3, 7)
    assert await count(setup, Complaint, Complaint.is_immediate_need.is_(True)) == 3
    assert await count(setup, ComplaintChange) == 3
    third = await setup.sync(full_file(Layout.CURRENT, rows(12, **changes)))
    assert (third.new, third.changed, third.unchanged) == (0, 0, 12)


class TestQuarantine:
    async def test_bad_rows_are_stored_sealed_as_they_are_found(self, setup: Setup) -> None:
        from hub.core import crypto
        from hub.syncs.models import QuarantinedRow, SyncRun
        from hub.syncs.service import RAW_FIELD

        listed = rows(9)
        for n in (2, 5, 6, 9):  # rows 2, 5, 6 and 9 of the file are bad
            listed[n - 1] = dict(listed[n - 1], RECEIVED_DATE="someday")
        listed[0] = dict(listed[0], ISSUE_LEVEL="Odd")  # a warning, not a quarantine
        result = await setup.sync(full_file(Layout.CURRENT, listed))
        assert (result.new, result.quarantined) == (5, 4)
        async with setup.db.transaction(read_only=True) as session:
            stored = (
                await session.scalars(select(QuarantinedRow).order_by(QuarantinedRow.row_number))
            ).all()
            run = await session.get(SyncRun, result.run_id)
            cipher = await crypto.cipher_for(session, setup.member.tenant_id)
        assert [q.row_number for q in stored] == [2, 5, 6, 9]
        assert {q.reason for q in stored} == {
            "RECEIVED_DATE is not a date (MM/DD/YYYY or YYYY-MM-DD)"
        }
        end = date.today()
        start = end - setup.policy.first_window  # every sync here asks the first window
        assert {q.file_name for q in stored} == {f"H1234_{start:%Y%m%d}_{end:%Y%m%d}.csv"}
        assert run is not None
        assert (run.rows_read, run.rows_quarantined, run.warnings) == (9, 4, 1)
        first = stored[0]
        assert first.raw is not None
        cells = json.loads(cipher.open(first.raw, field=RAW_FIELD, row=first.id))
        assert cells[NAMES.index("COMPLAINT_ID")] == "2"
        assert cells[NAMES.index("RECEIVED_DATE")] == "someday"


async def test_two_imports_in_one_transaction(setup: Setup) -> None:
    """Two imports inside one outer transaction (each its own savepoint, as a test's or
    a caller's transaction may hold them) share the staging table without tripping."""
    from hub.complaints.service import Deadlines, Importer
    from hub.core import crypto
    from hub.ctm.parser import ComplaintParser

    async with setup.db.transaction() as session:
        cipher = await crypto.cipher_for(session, setup.member.tenant_id)
        for size in (3, 5):
            parser = ComplaintParser(batch_size=2)
            importer = Importer(
                session, cipher, tenant_id=setup.member.tenant_id,
                environment=Environment.SANDBOX, api_key_id=None, complete=parser.complete,
                sync_run_id=None, now=utcnow(), deadlines=Deadlines(),
            )  # fmt: skip
            async with session.begin_nested():
                data = full_file(Layout.CURRENT, rows(size))
                for batch in [*parser.feed_rows(data), *parser.close_rows()]:
                    await importer.add(batch)
                result = await importer.finish()
            assert result.new == (2 if size == 5 else 3)  # complaints 4 and 5 are new
    assert await count(setup, Complaint) == 5


@pytest.mark.parametrize("failing", ["write", "read"])
async def test_a_database_step_that_fails_fails_the_sync_and_imports_nothing(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """The import waits for each write to be on its way: a write failing before that (or
    never sent because the read before it failed) must fail the sync, cleanly and rolled
    back, not leave it waiting."""
    from hub.complaints import service

    if failing == "write":
        monkeypatch.setattr(bulk, "write_batch", _failing_on_third(bulk.write_batch))
        monkeypatch.setattr(service, "_upsert_generic", _failing_on_third(service._upsert_generic))
    else:
        monkeypatch.setattr(service, "_stored_hashes", _failing_on_third(service._stored_hashes))
    result = await asyncio.wait_for(setup.sync(full_file(Layout.CURRENT, rows(12))), 30)
    assert result.outcome is RunOutcome.FAILED
    assert result.error == "RuntimeError: internal error"
    assert await count(setup, Complaint) == 0
    monkeypatch.undo()
    assert (await setup.sync(full_file(Layout.CURRENT, rows(12)))).new == 12


def _failing_on_third(original: Any) -> Any:
    """`original`, failing on its third call."""
    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the database went away")
        return await original(*args, **kwargs)

    return failing


_YOUNG_ROWS = """
INSERT INTO young (id, tenant_id, environment, contract, complaint_id, issue_level,
    is_immediate_need, received_date, due_date, due_basis, category, subcategory, fields,
    layout, phi, content_hash,
    phi_hash, resolution_state, first_seen_at, last_seen_at, last_changed_at, created_at,
    updated_at)
SELECT gen_random_uuid(), $1, 'sandbox', 'H1234', n::text, 'Standard', false, now(), now(),
    'received', '', '', '{}', 'current', '\\x00', md5(n::text), md5(n::text), 'none', now(), now(),
    now(), now(), now()
FROM generate_series($2::int, $3::int) AS n
"""


async def test_the_probe_reads_the_unique_key_in_a_table_without_statistics(
    setup: Setup,
) -> None:
    """The plan a connection keeps for the probe is made early, often while the table is
    young and has no statistics. At some sizes an index led by `tenant_id` alone then tied
    with the unique key and was chosen (each probe reading the tenant's every complaint).
    With only the unique key led by `tenant_id`, the kept (generic) plan probes it, at
    every size."""
    if setup.db.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL query plan")
    probe = bulk._STORED.replace("FROM complaints", "FROM young")
    async with setup.db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        async with driver.transaction():
            # A temporary copy with the same indexes: autovacuum never analyzes it.
            await driver.execute(
                "CREATE TEMPORARY TABLE young (LIKE complaints INCLUDING ALL) ON COMMIT DROP"
            )
            await driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            stored = 0
            for size in (0, 10, 100, 300, 1000, 3000):
                await driver.execute(_YOUNG_ROWS, setup.member.tenant_id, stored + 1, size)
                stored = size
                # Prepared anew at each size: a prepared statement keeps its generic plan.
                prepared = f"young_probe_{size}"
                await driver.execute(f"PREPARE {prepared}(uuid, text, text[], text) AS {probe}")
                plan = await driver.fetch(  # EXECUTE takes no parameters: our own uuid
                    f"EXPLAIN EXECUTE {prepared}('{setup.member.tenant_id}', 'H1234', "
                    "'{1,2,3}', 'sandbox')"
                )
                shape = "\n".join(row[0] for row in plan)
                assert "young_tenant_id_environment_contract_complaint_id" in shape, (size, shape)
                assert "Seq Scan" not in shape, (size, shape)


async def _complaint_reads(db: Database) -> int:
    """Rows and index entries read from `complaints` so far (sequential scans, and index
    scans of every index). Backends report lazily: the pool's are closed first (each
    reports as it ends), then the figures are read once they settle."""
    await db.engine.dispose()
    await asyncio.sleep(1.0)
    query = text(
        "SELECT coalesce(t.seq_tup_read, 0) + coalesce(sum(i.idx_tup_read), 0) "
        "FROM pg_stat_user_tables AS t JOIN pg_stat_user_indexes AS i USING (relid) "
        "WHERE t.relname = 'complaints' GROUP BY t.seq_tup_read"
    )
    last = -1
    for _ in range(20):
        async with db.engine.connect() as connection:
            await connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            now = int((await connection.execute(query)).scalar_one())
        if now == last:
            return now
        last = now
        await asyncio.sleep(0.2)
    return last


async def test_a_first_import_reads_what_it_probes_not_the_rows_it_wrote(setup: Setup) -> None:
    """Each batch probes the stored fingerprints of its own complaints: an index entry or
    none each, never a scan of what the import wrote before (which grows with the square
    of the rows)."""
    if setup.db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plans and statistics")
    setup.policy = syncs.SyncPolicy(batch_size=100)
    before = await _complaint_reads(setup.db)
    result = await setup.sync(full_file(Layout.CURRENT, rows(2000)))
    assert result.new == 2000
    reads = await _complaint_reads(setup.db) - before
    assert reads < 4 * 2000, reads  # an index probe per complaint, not a scan of the rest
