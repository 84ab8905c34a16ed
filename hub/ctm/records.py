"""What the download-file parser hands out: records, issues and the file's summary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

from hub.ctm import layouts
from hub.ctm.layouts import ChangeRequest, Layout

Value = str | date | bool | ChangeRequest | None
MAX_KEPT_WARNINGS = 1000


@dataclass(frozen=True, slots=True)
class Issue:
    """A quarantined row (reason) or a warning (message) with its 1-based data row number.
    A quarantined row keeps its cells as read (`cells`: PHI, to be sealed, never logged)."""

    row: int
    message: str
    cells: tuple[str, ...] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Columns:
    """Which known columns a file has (shared by all its records): all of them in file
    order, then the enum and Y/N ones, then the dates."""

    names: tuple[str, ...]
    positions: tuple[int, ...]  # where each of `names` sits in a row's cells
    choices: tuple[str, ...]
    dates: tuple[str, ...]
    text_at: Mapping[str, int] = field(init=False)  # text column -> cell position

    def __post_init__(self) -> None:
        typed = set(self.choices) | set(self.dates)
        text_at = {
            name: position
            for name, position in zip(self.names, self.positions, strict=True)
            if name not in typed
        }
        object.__setattr__(self, "text_at", MappingProxyType(text_at))


@dataclass(slots=True, eq=False)
class ComplaintRecord:
    """One good row of the download file.

    `values` gives every known column the file had, under its current name, typed by its
    kind (dates, enums, Y/N as bool); text exactly as written. `unknown` holds the unknown
    columns (and data under empty headers as `column_<position>`). The row's cells are kept
    as read and `values` is built on demand, so the parser does not pay for it twice.
    """

    row: int
    complaint_id: str
    contract_id: str
    issue_level: str
    is_immediate_need: bool
    received_date: date
    unknown: Mapping[str, str]
    columns: Columns
    cells: list[str]
    choices: tuple[Value, ...]
    dates: tuple[date | None, ...]

    @property
    def values(self) -> dict[str, Value]:
        cells = self.cells
        values: dict[str, Value] = {
            name: cells[position]
            for name, position in zip(self.columns.names, self.columns.positions, strict=True)
        }
        values.update(zip(self.columns.choices, self.choices, strict=True))
        values.update(zip(self.columns.dates, self.dates, strict=True))
        values["COMPLAINT_ID"] = self.complaint_id
        values["CONTRACT_ID"] = self.contract_id
        return values

    def text(self, column: str) -> str:
        """A text column exactly as written ('' when the file lacks the column)."""
        if column == "COMPLAINT_ID":
            return self.complaint_id
        if column == "CONTRACT_ID":
            return self.contract_id
        if column == "ISSUE_LEVEL":
            return self.issue_level
        position = self.columns.text_at.get(column)
        return "" if position is None else self.cells[position]

    def date(self, column: str) -> date | None:
        if column not in self.columns.dates:
            return None
        return self.dates[self.columns.dates.index(column)]

    def phi(self) -> dict[str, str]:
        """The protected health information columns: to be sealed, never logged."""
        return {
            name: self.text(name) for name in self.columns.text_at if name in layouts.PHI_COLUMNS
        }

    def __repr__(self) -> str:  # a record is full of PHI: keep it out of tracebacks and logs
        return f"ComplaintRecord(row={self.row}, contract_id={self.contract_id!r}, ...)"


@dataclass(slots=True, eq=False)
class RawRow:
    """One data row of a download before it is parsed (the parser's `feed_rows` mode).

    `text` is the record as written, line end dropped (for a file with bare CR line ends,
    its cells joined by U+001F): what a sync fingerprints to skip unchanged rows without
    parsing them. `complaint_id` and `contract_id` are read off the text where that is
    cheap and certain, else None (the row must be parsed to know). PHI: never logged.
    """

    row: int
    text: str
    cells: list[str] | None
    complaint_id: str | None
    contract_id: str | None

    def __repr__(self) -> str:
        return f"RawRow(row={self.row}, contract_id={self.contract_id!r}, ...)"


@dataclass
class ParseSummary:
    """What a parse found. Memory stays flat in file size: `warnings` keeps the first
    `MAX_KEPT_WARNINGS` (`warning_count` counts them all), and a consumer may take the
    quarantined rows away as it goes (`ComplaintParser.take_quarantined`;
    `quarantined_count` counts them all)."""

    layout: Layout | None = None
    rows_read: int = 0
    rows_imported: int = 0
    quarantined: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    quarantined_count: int = 0
    warning_count: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout.value if self.layout else None,
            "rows_read": self.rows_read,
            "rows_imported": self.rows_imported,
            "quarantined": [{"row": i.row, "reason": i.message} for i in self.quarantined],
            "warnings": [{"row": i.row, "message": i.message} for i in self.warnings],
            "unknown_columns": list(self.unknown_columns),
        }
