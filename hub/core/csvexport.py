"""CSV exports of a tenant's lists (complaints, the audit log): written row by row as pages
arrive, bounded, safe to open in a spreadsheet.

- **Formula injection.** Complaint fields come from CMS's files and audit details from
  users; a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and Excel also
  one after a leading tab or CR) as a formula. Such a cell gets a leading `'`, which Excel
  and LibreOffice show as text and do not print.
- **Encoding.** UTF-8 with a byte-order mark: a plan's compliance team opens these files in
  Excel by double-click, and Excel reads a CSV without a BOM in the machine's ANSI code page,
  garbling every non-ASCII character (accented names, an em dash). Python's `utf-8-sig`,
  pandas and most CSV readers skip the BOM.
- **Bound.** At most `MAX_ROWS` rows; a longer export ends with one more line saying it was
  cut, so a reader cannot take a partial file for the whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from litestar.response import Stream

MAX_ROWS = 100_000
PAGE_ROWS = 1_000  # rows fetched, and written, at a time
BOM = "\ufeff"
MEDIA_TYPE = "text/csv"  # Litestar adds "; charset=utf-8"
CUT_PREFIX = "# cut at"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One value as a spreadsheet-safe cell: dates in ISO 8601, booleans as true/false, None
    empty, and text that a spreadsheet would run as a formula neutralised with a `'`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def lines(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([cell(v) for v in row] for row in rows)
    return out.getvalue()


def cut_line(limit: int) -> str:
    return lines([[f"{CUT_PREFIX} {limit} rows: narrow the filters to export the rest"]])


async def stream(
    header: Sequence[str], pages: AsyncIterator[Sequence[Sequence[Any]]], *, limit: int
) -> AsyncIterator[bytes]:
    """The file in chunks: the BOM and header, then a chunk per page, then the cut line if
    more than `limit` rows came. Stops pulling pages once past the limit."""
    yield (BOM + lines([header])).encode()
    written = 0
    try:
        async for page in pages:
            room = limit - written
            if len(page) > room:
                yield (lines(page[:room]) + cut_line(limit)).encode()
                return
            written += len(page)
            if page:
                yield lines(page).encode()
    finally:
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()


def file_name(kind: str, tenant_slug: str, day: date) -> str:
    """`<kind>-<tenant slug>-<YYYYMMDD>.csv` (a slug is lower-case letters, digits and `-`)."""
    return f"{kind}-{tenant_slug}-{day:%Y%m%d}.csv"


def headers(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


def download(name: str, chunks: AsyncIterator[bytes]) -> Stream:
    """The answer that streams a file to save as `name` (the portal's page headers are added
    to it on the way out, as to every portal answer)."""
    return Stream(chunks, media_type=MEDIA_TYPE, headers=headers(name))
