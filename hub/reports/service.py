"""Timeliness: how many complaints were resolved within their 2-day or 7-day timeframe
(42 CFR 422.125 / 423.129), per contract, for a period. What compliance staff report and
what CMS measures.

A complaint counts as resolved on the date CMS holds: the `RESOLUTION_DATE` of CMS's own
file, else the date of our resolution that CMS accepted. A resolution written here but not
yet accepted by CMS does not count (CMS counts the complaint open until it has it); such a
complaint is counted open, and `awaiting_cms` says how many of those have one on its way.
On time means resolved no later than the due date. No PHI is read.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.service import deadline_moment
from hub.core import csvexport
from hub.core.errors import Invalid, choice
from hub.core.ids import TenantID
from hub.keys.models import Environment

MAX_PERIOD_DAYS = 366
TOTAL = "all"


class PeriodBasis(enum.StrEnum):
    DUE = "due"  # complaints whose due date falls in the period (the default)
    RECEIVED = "received"  # complaints CMS received in the period


class Timeframe(enum.StrEnum):
    IMMEDIATE = "immediate"  # immediate need: 2 days
    STANDARD = "standard"  # everything else: 7 days


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date
    basis: PeriodBasis = PeriodBasis.DUE

    @classmethod
    def checked(cls, start: date, end: date, basis: PeriodBasis) -> Period:
        if end < start:
            raise Invalid("to", f"must not be before from ({start.isoformat()})")
        if (end - start).days + 1 > MAX_PERIOD_DAYS:
            raise Invalid("to", f"the period may span at most {MAX_PERIOD_DAYS} days")
        return cls(start, end, basis)


@dataclass(slots=True)
class Tally:
    """One line of the report: a contract and timeframe (or `all` for either)."""

    contract: str
    timeframe: str
    complaints: int = 0
    resolved_on_time: int = 0
    resolved_late: int = 0
    open_overdue: int = 0
    open_not_due: int = 0
    awaiting_cms: int = 0  # open, with a resolution of ours queued or on its way to CMS
    days_to_resolve: list[int] = field(default_factory=list)

    @property
    def decided(self) -> int:
        """Complaints whose timeliness is settled: resolved, or past due unresolved."""
        return self.resolved_on_time + self.resolved_late + self.open_overdue

    @property
    def timely_percent(self) -> float | None:
        if not self.decided:
            return None
        return round(100.0 * self.resolved_on_time / self.decided, 1)

    @property
    def median_days_to_resolve(self) -> float | None:
        return float(statistics.median(self.days_to_resolve)) if self.days_to_resolve else None

    def add(self, row: _Row, *, now: datetime) -> None:
        self.complaints += 1
        resolved_on = row.resolved_on
        if resolved_on is not None:
            if resolved_on <= row.due_date:
                self.resolved_on_time += 1
            else:
                self.resolved_late += 1
            self.days_to_resolve.append(max(0, (resolved_on - row.started_on).days))
            return
        if deadline_moment(row.due_date) <= now:
            self.open_overdue += 1
        else:
            self.open_not_due += 1
        if row.state in (ResolutionState.QUEUED, ResolutionState.UPLOADING):
            self.awaiting_cms += 1


@dataclass(frozen=True, slots=True)
class _Row:
    contract: str
    is_immediate: bool
    started_on: date  # assignment date, or received date without one
    due_date: date
    resolved_on: date | None
    state: ResolutionState


@dataclass(frozen=True, slots=True)
class Report:
    environment: Environment
    period: Period
    generated_at: datetime
    lines: list[Tally]


async def _rows(
    session: AsyncSession, tenant_id: TenantID, environment: Environment, period: Period
) -> AsyncIterator[_Row]:
    accepted = (
        select(Resolution.complaint_pk, func.max(Resolution.resolution_date).label("on"))
        .where(Resolution.tenant_id == tenant_id, Resolution.state == ResolutionState.ACCEPTED)
        .group_by(Resolution.complaint_pk)
        .subquery()
    )
    column = Complaint.due_date if period.basis is PeriodBasis.DUE else Complaint.received_date
    statement = (
        select(
            Complaint.contract,
            Complaint.is_immediate_need,
            func.coalesce(Complaint.assignment_date, Complaint.received_date),
            Complaint.due_date,
            Complaint.cms_resolution_date,
            accepted.c.on,
            Complaint.resolution_state,
        )
        .outerjoin(accepted, accepted.c.complaint_pk == Complaint.id)
        .where(
            Complaint.tenant_id == tenant_id,
            Complaint.environment == environment,
            column >= period.start,
            column <= period.end,
        )
    )
    result = await session.stream(statement.execution_options(yield_per=2000))
    async for contract, immediate, started, due, cms_date, ours, state in result:
        yield _Row(contract, immediate, started, due, cms_date or ours, state)


async def timeliness(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    environment: Environment,
    period: Period,
    now: datetime,
) -> Report:
    """Per contract and timeframe, then per contract, then one line for everything."""
    lines: dict[tuple[str, str], Tally] = {}

    def line(contract: str, timeframe: str) -> Tally:
        found = lines.get((contract, timeframe))
        if found is None:
            found = lines[(contract, timeframe)] = Tally(contract, timeframe)
        return found

    async for row in _rows(session, tenant_id, environment, period):
        timeframe = Timeframe.IMMEDIATE if row.is_immediate else Timeframe.STANDARD
        for contract, frame in (
            (row.contract, timeframe.value),
            (row.contract, TOTAL),
            (TOTAL, timeframe.value),
            (TOTAL, TOTAL),
        ):
            line(contract, frame).add(row, now=now)
    line(TOTAL, TOTAL)  # always there, if only with zeros
    order = {Timeframe.IMMEDIATE.value: 0, Timeframe.STANDARD.value: 1, TOTAL: 2}
    ordered = sorted(
        lines.values(), key=lambda t: (t.contract == TOTAL, t.contract, order[t.timeframe])
    )
    return Report(environment, period, now, ordered)


CSV_COLUMNS = (
    "contract",
    "timeframe",
    "complaints",
    "resolved_on_time",
    "resolved_late",
    "open_overdue",
    "open_not_due",
    "awaiting_cms",
    "timely_percent",
    "median_days_to_resolve",
)


def csv_values(tally: Tally) -> list[Any]:
    return [
        tally.contract,
        tally.timeframe,
        tally.complaints,
        tally.resolved_on_time,
        tally.resolved_late,
        tally.open_overdue,
        tally.open_not_due,
        tally.awaiting_cms,
        "" if tally.timely_percent is None else tally.timely_percent,
        "" if tally.median_days_to_resolve is None else tally.median_days_to_resolve,
    ]


async def timeliness_asked(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    environment: str | None,
    start: date | None,
    end: date | None,
    basis: str | None,
    now: datetime,
) -> Report:
    """The report as a query asks for it (API or portal): production and this calendar
    month (UTC) to today unless asked otherwise; a 400 names a bad value."""
    chosen = choice("environment", environment, Environment) or Environment.PRODUCTION
    by = choice("basis", basis, PeriodBasis) or PeriodBasis.DUE
    end = end or now.date()
    period = Period.checked(start or end.replace(day=1), end, by)
    return await timeliness(session, tenant_id, environment=chosen, period=period, now=now)


@dataclass(frozen=True, slots=True)
class CsvFile:
    name: str
    text: str


def csv_file(report: Report) -> CsvFile:
    """The report as a CSV file: a header row, then one row per line (written as the other
    exports are: with a BOM for Excel, formula-like cells neutralised)."""
    body = csvexport.BOM + csvexport.lines([CSV_COLUMNS, *(csv_values(t) for t in report.lines)])
    period = report.period
    name = f"timeliness-{report.environment.value}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"
    return CsvFile(name, body)
