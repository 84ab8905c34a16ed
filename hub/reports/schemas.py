"""Response bodies of the reports API. No PHI: counts, dates and contract numbers."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from hub.reports.service import Report, Tally


class TimelinessLine(msgspec.Struct):
    contract: str  # a contract number, or "all"
    timeframe: str  # immediate, standard, or "all"
    complaints: int
    resolved_on_time: int
    resolved_late: int
    open_overdue: int
    open_not_due: int
    awaiting_cms: int
    # resolved on time out of those resolved or past due; null when there are none yet
    timely_percent: float | None
    median_days_to_resolve: float | None

    @classmethod
    def of(cls, t: Tally) -> TimelinessLine:
        return cls(
            t.contract, t.timeframe, t.complaints, t.resolved_on_time, t.resolved_late,
            t.open_overdue, t.open_not_due, t.awaiting_cms, t.timely_percent,
            t.median_days_to_resolve,
        )  # fmt: skip


class TimelinessReport(msgspec.Struct):
    environment: str
    period_from: date = msgspec.field(name="from")
    period_to: date = msgspec.field(name="to")
    basis: str
    generated_at: datetime
    lines: list[TimelinessLine]

    @classmethod
    def of(cls, report: Report) -> TimelinessReport:
        return cls(
            environment=report.environment.value,
            period_from=report.period.start,
            period_to=report.period.end,
            basis=report.period.basis.value,
            generated_at=report.generated_at,
            lines=[TimelinessLine.of(t) for t in report.lines],
        )
