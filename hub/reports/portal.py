"""The reports pages of the portal: complaint resolution timeliness per contract and
timeframe, with the API's period and basis controls, and its CSV for a browser (the API's
`.csv` needs a bearer token). Counts only: no PHI."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import Scope
from hub.core.db import utcnow
from hub.core.errors import Invalid
from hub.keys.models import Environment
from hub.portal import forms
from hub.portal.web import PAGE_HEADERS, page, principal_of, render
from hub.reports import service
from hub.reports.service import PeriodBasis

FromDate = Annotated[str, QueryParameter(name="from", max_length=10)]
ToDate = Annotated[str, QueryParameter(name="to", max_length=10)]
Choice = Annotated[str, QueryParameter(max_length=20)]


async def _report(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    environment: str,
    start: str,
    end: str,
    basis: str,
) -> service.Report:
    return await service.timeliness_asked(
        session, principal_of(request).tenant, environment=environment,
        start=forms.day("from", start), end=forms.day("to", end), basis=basis, now=utcnow(),
    )  # fmt: skip


@get("/reports/timeliness", opt=page(Scope.COMPLAINTS_READ))
async def timeliness_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    environment: Choice = "",
    period_from: FromDate = "",
    period_to: ToDate = "",
    basis: Choice = "",
) -> Template:
    """How many complaints were resolved within their timeframe, per contract."""
    asked = {"environment": environment, "from": period_from, "to": period_to, "basis": basis}
    report, errors = None, {}
    try:
        report = await _report(request, db_session, environment, period_from, period_to, basis)
    except Invalid as error:
        errors[error.field] = error.reason
    if report is not None:  # the controls show what the report was made for
        asked = {
            "environment": report.environment.value, "from": report.period.start.isoformat(),
            "to": report.period.end.isoformat(), "basis": report.period.basis.value,
        }  # fmt: skip
    return await render(
        request, db_session, "reports/timeliness.html", title="Timeliness",
        status_code=400 if errors else 200, report=report, asked=asked, errors=errors,
        csv_href="/portal/reports/timeliness.csv?" + urlencode(asked),
        environments=list(Environment), bases=list(PeriodBasis),
    )  # fmt: skip


@get("/reports/timeliness.csv", opt=page(Scope.COMPLAINTS_READ))
async def timeliness_csv(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    environment: Choice = "",
    period_from: FromDate = "",
    period_to: ToDate = "",
    basis: Choice = "",
) -> Response[str]:
    """The same report as the API's CSV file, for the signed-in browser."""
    report = await _report(request, db_session, environment, period_from, period_to, basis)
    file = service.csv_file(report)
    return Response(
        file.text,
        media_type="text/csv; charset=utf-8",
        headers={
            **PAGE_HEADERS,
            "Content-Disposition": f'attachment; filename="{file.name}"',
        },
    )


PAGES: list[Any] = [timeliness_page, timeliness_csv]
