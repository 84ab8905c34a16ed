"""The plan upload file (CTM-API.md section 7): casework resolutions, written and read.

The client writes it; the simulator reads it the way CMS would. The columns and limits are
in `hub.ctm.modeled`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from hub.ctm import layouts, modeled
from hub.ctm.csvstream import RecordSplitter, RecordWriter
from hub.ctm.errors import FileRejected


class InvalidResolution(ValueError):
    """A resolution that CMS would reject; names the complaint and the field."""


@dataclass(frozen=True, slots=True)
class ResolutionRow:
    complaint_id: str
    contract_id: str
    resolution_date: date | None
    resolution_summary: str
    casework_notes: str = ""
    complainant_satisfied: bool | None = None
    resolution_notification: str = ""

    def __repr__(self) -> str:  # the summary and notes are PHI
        return f"ResolutionRow(complaint_id={self.complaint_id!r}, contract={self.contract_id!r})"

    def problems(self) -> list[str]:
        """What CMS would refuse in this row (empty when it is fine)."""
        found = []
        if not self.complaint_id.strip():
            found.append("COMPLAINT_ID is empty")
        if not layouts.is_contract_number(self.contract_id):
            found.append(f"CONTRACT_ID {self.contract_id!r} is not a contract number")
        if self.resolution_date is None:
            found.append("RESOLUTION_DATE is missing")
        if len(self.resolution_summary) > modeled.UPLOAD_SUMMARY_MAX_CHARS:
            found.append(
                f"RESOLUTION_SUMMARY is {len(self.resolution_summary)} characters; "
                f"at most {modeled.UPLOAD_SUMMARY_MAX_CHARS}"
            )
        return found

    def cells(self) -> list[str]:
        satisfied = {True: "Y", False: "N", None: ""}[self.complainant_satisfied]
        when = self.resolution_date
        return [
            self.complaint_id,
            self.contract_id,
            when.strftime(modeled.UPLOAD_DATE_FORMAT) if when else "",
            self.resolution_summary,
            self.casework_notes,
            satisfied,
            self.resolution_notification,
        ]


def write_upload_file(rows: Iterable[ResolutionRow], *, check: bool = True) -> bytes:
    """The upload CSV. With `check`, a row CMS would refuse raises `InvalidResolution`."""
    writer = RecordWriter()
    parts = [writer.encode(modeled.UPLOAD_COLUMNS)]
    for row in rows:
        if check and (problems := row.problems()):
            raise InvalidResolution(f"complaint {row.complaint_id}: {'; '.join(problems)}")
        parts.append(writer.encode(row.cells()))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class UploadLine:
    """One row of an upload file as read: the cells as text, and what is wrong with them."""

    row: int
    cells: dict[str, str]
    resolution: ResolutionRow | None
    errors: list[str]


def read_upload_file(data: bytes) -> Iterator[UploadLine]:
    """Read an upload file the way CMS is modeled to; raises FileRejected for a bad header."""
    splitter = RecordSplitter()
    records = splitter.feed(data) + splitter.close()
    if not records:
        raise FileRejected("empty file")
    header = [layouts.fold(cell) for cell in records[0]]
    folded = {name: layouts.fold(name) for name in modeled.UPLOAD_COLUMNS}
    missing = [name for name, f in folded.items() if f not in header]
    if missing:
        raise FileRejected(f"missing required column {', '.join(missing)}")
    positions = {name: header.index(f) for name, f in folded.items()}
    number = 0
    for record in records[1:]:
        if not any(record):
            continue
        number += 1
        cells = {name: record[p] if p < len(record) else "" for name, p in positions.items()}
        yield _upload_line(number, cells)


def _upload_line(number: int, cells: dict[str, str]) -> UploadLine:
    errors: list[str] = []
    when: date | None = None
    raw_date = cells["RESOLUTION_DATE"].strip()
    if raw_date:
        try:
            when = datetime.strptime(raw_date, modeled.UPLOAD_DATE_FORMAT).date()
        except ValueError:
            errors.append("RESOLUTION_DATE is not MM/DD/YYYY")
    satisfied_text = cells["COMPLAINANT_SATISFIED"].strip().upper()
    if satisfied_text not in modeled.UPLOAD_SATISFIED_VALUES:
        errors.append("COMPLAINANT_SATISFIED must be Y, N or blank")
    satisfied = {"Y": True, "N": False}.get(satisfied_text)
    row = ResolutionRow(
        complaint_id=cells["COMPLAINT_ID"].strip(),
        contract_id=cells["CONTRACT_ID"].strip(),
        resolution_date=when,
        resolution_summary=cells["RESOLUTION_SUMMARY"],
        casework_notes=cells["CMS_PLAN_CASEWORK_NOTES"],
        complainant_satisfied=satisfied,
        resolution_notification=cells["RESOLUTION_NOTIFICATION"],
    )
    problems = row.problems()
    if raw_date and when is None:  # already reported as a bad date, not a missing one
        problems = [p for p in problems if not p.startswith("RESOLUTION_DATE")]
    errors = problems + errors
    return UploadLine(number, cells, row if not errors else None, errors)
