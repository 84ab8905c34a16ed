"""/api/v1/reports: complaint resolution timeliness, as JSON or as a CSV file."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.db import utcnow
from hub.core.errors import documented
from hub.reports import service
from hub.reports.schemas import TimelinessReport

READ = scope(Scope.COMPLAINTS_READ)

FromDate = Annotated[date | None, QueryParameter(name="from")]
ToDate = Annotated[date | None, QueryParameter(name="to")]
Choice = Annotated[str | None, QueryParameter(max_length=20)]


async def _report(
    session: AsyncSession,
    principal: Principal,
    environment: str | None,
    start: date | None,
    end: date | None,
    basis: str | None,
) -> service.Report:
    return await service.timeliness_asked(
        session, principal.tenant, environment=environment, start=start, end=end, basis=basis,
        now=utcnow(),
    )  # fmt: skip


class ReportController(Controller):
    path = "/reports"
    tags = ["reports"]

    @get("/timeliness", opt=READ, responses=documented(400, 401, 403))
    async def timeliness(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        environment: Choice = None,
        period_from: FromDate = None,
        period_to: ToDate = None,
        basis: Choice = None,
    ) -> TimelinessReport:
        """How many complaints were resolved within their timeframe (immediate need: 2
        days, otherwise 7), per contract and timeframe, with a line per contract and one for
        all (`all`). `basis=due` (the default) takes the complaints due in the period,
        `basis=received` those CMS received in it. Resolved means CMS holds a resolution
        date (its file's, or ours that it accepted); counts only, no PHI."""
        report = await _report(db_session, principal, environment, period_from, period_to, basis)
        return TimelinessReport.of(report)

    @get(
        "/timeliness.csv",
        opt=READ,
        media_type="text/csv",
        responses=documented(400, 401, 403),
    )
    async def timeliness_csv(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        environment: Choice = None,
        period_from: FromDate = None,
        period_to: ToDate = None,
        basis: Choice = None,
    ) -> Response[str]:
        """The same report as a CSV file (a header row, then one row per line)."""
        report = await _report(db_session, principal, environment, period_from, period_to, basis)
        file = service.csv_file(report)
        return Response(
            file.text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{file.name}"'},
        )
