"""Streaming parser of the plan download file (CTM-API.md section 6, "Precise rules").

Feed it chunks of bytes (a sync or async iterator); typed `ComplaintRecord`s come out in
batches, bad rows are quarantined with their row number and reason, and a `ParseSummary`
is ready at the end. What is held is the unfinished record, one chunk's rows and one
batch, never the file; the index of complaint IDs seen (for duplicates) moves to a
temporary SQLite file past `memory_keys` complaints, so memory stays flat in file size.
"""

from __future__ import annotations

import csv
import io
import operator
import re
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, TypeVar

from hub.ctm import layouts
from hub.ctm.csvstream import CELL_LIMIT, CELL_TOO_LONG, RecordSplitter
from hub.ctm.dedupe import DEFAULT_MEMORY_KEYS, SeenComplaints
from hub.ctm.errors import FileRejected
from hub.ctm.layouts import ChangeRequest, IssueLevel, Kind
from hub.ctm.records import (
    MAX_KEPT_WARNINGS,
    Columns,
    ComplaintRecord,
    Issue,
    ParseSummary,
    RawRow,
    Value,
)

DEFAULT_BATCH_SIZE = 500
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ISSUE_LEVELS = {level.value.lower(): level.value for level in IssueLevel}
_CHANGE_REQUESTS: dict[str, ChangeRequest | None] = {c.value.lower(): c for c in ChangeRequest}
_CHANGE_REQUESTS.update(dict.fromkeys(layouts.BLANK_WORDS))
_YES_NO: dict[str, bool | None] = {"": None} | dict.fromkeys(layouts.YES_WORDS, True)
_YES_NO.update(dict.fromkeys(layouts.NO_WORDS, False))


def parse_date(text: str) -> date | None:
    """`MM/DD/YYYY`, `M/D/YYYY` (US order) or `YYYY-MM-DD`; None when it is not a date."""
    us = _US_DATE.fullmatch(text)
    try:
        if us is not None:
            return date(int(us[3]), int(us[1]), int(us[2]))
        iso = _ISO_DATE.fullmatch(text)
        if iso is not None:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
    except ValueError:
        return None
    return None


_NO_UNKNOWN: Mapping[str, str] = MappingProxyType({})
_CACHE_LIMIT = 20_000
_IMMEDIATE_NEED = IssueLevel.IMMEDIATE_NEED.value


class _Quarantine(Exception):
    """A row's fault; caught in the row loop, never leaves the parser."""


Getter = Callable[[list[str]], tuple[str, ...]]
Row = TypeVar("Row")
KeysOf = Callable[[Row], tuple[str | None, str | None]]


def _getter(positions: list[int]) -> Getter:
    """Like itemgetter, but a tuple even for one position."""
    if len(positions) == 1:
        only = positions[0]
        return lambda cells: (cells[only],)
    return operator.itemgetter(*positions)


@dataclass(frozen=True, slots=True)
class _Header:
    width: int
    id_at: int  # positions in a row's cells
    contract_at: int
    choice_names: tuple[str, ...]  # enum and Y/N columns
    pick_choices: Getter
    level_at: int  # position inside `choice_names`
    date_names: tuple[str, ...]
    pick_dates: Getter
    received_at: int  # position inside `date_names`
    unknown: tuple[tuple[int, str], ...]
    empty_headed: frozenset[int]
    columns: Columns


def _read_header(cells: list[str]) -> tuple[_Header, list[str]]:
    known: dict[str, int] = {}
    seen_folded: dict[str, str] = {}
    unknown: list[tuple[int, str]] = []
    empty: set[int] = set()
    for position, cell in enumerate(cells):
        if not cell.strip():
            empty.add(position)
            continue
        name = layouts.canonical_name(cell)
        key = name or layouts.fold(cell)
        if key in seen_folded:
            raise FileRejected(
                f"duplicate column {key}: headers {seen_folded[key]!r} and {cell!r} "
                "fold to the same name"
            )
        seen_folded[key] = cell
        if name is None:
            unknown.append((position, cell.strip()))
        else:
            known[name] = position
    missing = [name for name in layouts.REQUIRED_COLUMNS if name not in known]
    if missing:
        raise FileRejected(f"missing required column {', '.join(missing)}")
    names = tuple(known)
    kinds = {name: layouts.COLUMNS[name].kind for name in names}
    choices = tuple(n for n in names if kinds[n] in (Kind.ENUM, Kind.YES_NO))
    dates = tuple(n for n in names if kinds[n] is Kind.DATE)
    header = _Header(
        width=len(cells),
        id_at=known["COMPLAINT_ID"],
        contract_at=known["CONTRACT_ID"],
        choice_names=choices,
        pick_choices=_getter([known[n] for n in choices]),
        level_at=choices.index("ISSUE_LEVEL"),
        date_names=dates,
        pick_dates=_getter([known[n] for n in dates]),
        received_at=dates.index("RECEIVED_DATE"),
        unknown=tuple(unknown),
        empty_headed=frozenset(empty),
        columns=Columns(names, tuple(known.values()), choices, dates),
    )
    return header, [name for _, name in unknown]


class ComplaintParser:
    """Push chunks with `feed`, end with `close`; or drive it with `parse` / `aparse`.

    `allowed_contracts` is the set the downloading key covers (None: any valid contract).
    """

    def __init__(
        self,
        *,
        allowed_contracts: Collection[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        memory_keys: int = DEFAULT_MEMORY_KEYS,
    ) -> None:
        self.summary = ParseSummary()
        self._allowed = frozenset(allowed_contracts) if allowed_contracts is not None else None
        self._batch_size = batch_size
        self._splitter = RecordSplitter()
        self._seen = SeenComplaints(memory_keys)
        self._header: _Header | None = None
        self._read_row: Callable[[list[str], int], ComplaintRecord] | None = None
        self._batch: list[ComplaintRecord] = []
        self._rows: list[RawRow] = []
        self._duplicates = 0
        self._dates: dict[tuple[str, ...], tuple[date | None, ...]] = {}
        self._contracts: dict[str, str] = {}
        self._choices: dict[tuple[str, ...], tuple[Value, ...]] = {}
        self._closed = False

    # Driving ----------------------------------------------------------------------------

    def parse(self, chunks: Iterable[bytes]) -> Iterator[list[ComplaintRecord]]:
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.close()

    async def aparse(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[list[ComplaintRecord]]:
        async for chunk in chunks:
            for batch in self.feed(chunk):
                yield batch
        for batch in self.close():
            yield batch

    def feed(self, chunk: bytes) -> list[list[ComplaintRecord]]:
        """Take the next bytes; return the batches that filled up."""
        if self._closed:
            raise RuntimeError("parser already closed")
        return self._take(self._splitter.feed(chunk))

    def close(self) -> list[list[ComplaintRecord]]:
        """End of input: the last batch, and the summary completed (or FileRejected)."""
        self._closed = True
        try:
            batches = self._take(self._splitter.close())
            self._note_foreign_bytes()
            if self._splitter.bytes_seen == 0:
                raise FileRejected("empty file")
            if self._header is None:
                raise FileRejected("the file has no header row")
        finally:
            self._seen.close()
        if self._batch:
            batches.append(self._batch)
            self._batch = []
        self._count()
        return batches

    # Triage: rows first, parsed on demand ---------------------------------------------------
    #
    # `feed_rows` / `close_rows` (or `arows`) hand out batches of `RawRow`s: each row's text,
    # number, complaint ID and contract, without parsing it. The caller decides which rows
    # it needs (a sync skips the ones whose fingerprint matches what it stored) and passes
    # every batch, in order, to `complete`, which parses the others, quarantines bad ones
    # and finds duplicates across the whole file. Warnings concern the parsed rows only.

    async def arows(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[list[RawRow]]:
        async for chunk in chunks:
            for batch in self.feed_rows(chunk):
                yield batch
        for batch in self.close_rows():
            yield batch

    def feed_rows(self, chunk: bytes) -> list[list[RawRow]]:
        if self._closed:
            raise RuntimeError("parser already closed")
        return self._triage(self._splitter.feed_raw(chunk))

    def close_rows(self) -> list[list[RawRow]]:
        """End of input: the last batch. Counts are final once `complete` saw every batch."""
        self._closed = True
        try:
            batches = self._triage(self._splitter.close_raw())
            self._note_foreign_bytes()
            if self._splitter.bytes_seen == 0:
                raise FileRejected("empty file")
            if self._header is None:
                raise FileRejected("the file has no header row")
        except BaseException:
            self._seen.close()
            raise
        if self._rows:
            batches.append(self._rows)
            self._rows = []
        self._count()
        return batches

    def complete(self, rows: list[RawRow], skip: Collection[int] = ()) -> list[ComplaintRecord]:
        """Parse `rows` except the positions in `skip` (rows the caller knows unchanged,
        hence good); quarantine bad ones; record every row's complaint for duplicates."""
        record_of = self._read_row
        if record_of is None:
            raise RuntimeError("complete() before the header was read")
        if len(skip) == len(rows):  # all known unchanged (a re-sync): only their keys count
            self._remember([_skipped(raw) for raw in rows])
            return []
        texts = [r.text for i, r in enumerate(rows) if i not in skip and r.cells is None]
        parsed = iter(_cells_of(texts))
        keys: list[tuple[str, str, int]] = []
        records: list[ComplaintRecord] = []
        for index, raw in enumerate(rows):
            if index in skip:
                keys.append(_skipped(raw))
                continue
            cells = raw.cells if raw.cells is not None else next(parsed)
            try:
                if cells is None:
                    raise _Quarantine(_unreadable(raw.text))
                record = record_of(cells, raw.row)
            except _Quarantine as fault:
                kept = tuple(cells) if cells is not None else (raw.text,)
                self._quarantine(Issue(raw.row, str(fault), kept))
                continue
            keys.append((record.contract_id, record.complaint_id, record.row))
            records.append(record)
        self._remember(keys)
        return records

    def _remember(self, keys: list[tuple[str, str, int]]) -> None:
        """Note each row's complaint (in file order) and warn of those seen before."""
        for (contract, complaint, row), previous in zip(
            keys, self._seen.remember_all(keys), strict=True
        ):
            if previous is not None:
                self._duplicate(contract, complaint, row, previous)
        if self._closed:
            self._count()

    def finish(self) -> None:
        """Release the duplicate index (a temporary file past `memory_keys` complaints)."""
        self._seen.close()

    def _triage(self, records: list[str | list[str]]) -> list[list[RawRow]]:
        full: list[list[RawRow]] = []
        batch, batch_size = self._rows, self._batch_size
        rows = iter(records)
        if self._header is None:
            for record in rows:
                names = record if isinstance(record, list) else _header_cells(record)
                if any(names):
                    self._start(names)
                    break
        header = self._header
        if header is None:
            return full
        keys_of, keys_of_cells = self._keys_reader(header)
        row = self.summary.rows_read
        try:
            for record in rows:
                if isinstance(record, list):
                    if not any(record):
                        continue
                    cells: list[str] | None = record
                    text = "\x1f".join(record)
                    complaint, contract = keys_of_cells(record)
                else:
                    text, cells = record, None
                    if not text.strip(',"'):
                        # Only commas and quotes: blank unless a cell holds a quote.
                        cells = _cells_of([text])[0]
                        if cells is not None and not any(cells):
                            continue
                    complaint, contract = keys_of(text)
                row += 1
                batch.append(RawRow(row, text, cells, complaint, contract))
                if len(batch) >= batch_size:
                    full.append(batch)
                    batch = self._rows = []
        finally:
            self.summary.rows_read = row
        return full

    def _keys_reader(self, header: _Header) -> tuple[KeysOf[str], KeysOf[list[str]]]:
        """Complaint ID and (valid) contract of a row, from its text when both cells come
        before the first quoted comma, or from its cells; (None, None) when only parsing
        can tell."""
        id_at, contract_at = header.id_at, header.contract_at
        span = max(id_at, contract_at) + 1
        known, check = self._contracts, self._check_contract

        def valid(complaint: str | None, contract: str | None) -> tuple[str | None, str | None]:
            if complaint is None or contract is None:
                return None, None
            complaint = complaint.strip()
            checked = known.get(contract)
            if checked is None:
                checked = check(contract)
                if checked is None:
                    return None, None  # parsing will say what is wrong with it
                if len(known) < _CACHE_LIMIT:
                    known[contract] = checked
            return (complaint, checked) if complaint else (None, None)

        def of_text(text: str) -> tuple[str | None, str | None]:
            parts = text.split(",", span)
            if len(parts) < span:
                return None, None
            return valid(_plain_cell(parts[id_at]), _plain_cell(parts[contract_at]))

        def of_cells(cells: list[str]) -> tuple[str | None, str | None]:
            if len(cells) < span:
                return None, None
            return valid(cells[id_at], cells[contract_at])

        return of_text, of_cells

    def take_quarantined(self) -> list[Issue]:
        """The quarantined rows found since the last call, handed over (and no longer held:
        a consumer storing them as it goes keeps memory flat however many there are)."""
        taken, self.summary.quarantined = self.summary.quarantined, []
        return taken

    def _quarantine(self, issue: Issue) -> None:
        self.summary.quarantined_count += 1
        self.summary.quarantined.append(issue)

    def _warn(self, issue: Issue) -> None:
        summary = self.summary
        summary.warning_count += 1
        if len(summary.warnings) < MAX_KEPT_WARNINGS:
            summary.warnings.append(issue)

    def _note_foreign_bytes(self) -> None:
        """One warning for the file (row 0) if bytes in it were not UTF-8."""
        splitter = self._splitter
        if splitter.foreign_bytes:
            self._warn(
                Issue(0, f"{splitter.foreign_bytes} byte(s) of the file were not UTF-8 and were "
                         f"read as Windows-1252 (the first near byte {splitter.first_foreign_at})")
            )  # fmt: skip

    def _count(self) -> None:
        # Duplicate warnings are raised after the row's other warnings: sort by row.
        summary = self.summary
        summary.warnings.sort(key=lambda issue: issue.row)
        summary.quarantined.sort(key=lambda issue: issue.row)
        summary.rows_imported = summary.rows_read - summary.quarantined_count - self._duplicates

    # Rows -------------------------------------------------------------------------------

    def _take(self, records: list[list[str]]) -> list[list[ComplaintRecord]]:
        full: list[list[ComplaintRecord]] = []
        summary = self.summary
        batch, batch_size = self._batch, self._batch_size
        rows = iter(records)
        if self._header is None:
            for cells in rows:
                if any(cells):
                    self._start(cells)
                    break
        record_of = self._read_row
        if record_of is None:
            return full  # no header yet
        good: list[ComplaintRecord] = []
        row = summary.rows_read
        try:
            for cells in rows:
                if not any(cells):
                    continue  # a blank line, or a line of bare commas: not a data record
                row += 1
                try:
                    good.append(record_of(cells, row))
                except _Quarantine as fault:
                    self._quarantine(Issue(row, str(fault), tuple(cells)))
        finally:
            summary.rows_read = row
        seen = self._seen.remember_all([(r.contract_id, r.complaint_id, r.row) for r in good])
        for record, previous in zip(good, seen, strict=True):
            if previous is not None:
                self._duplicate(record.contract_id, record.complaint_id, record.row, previous)
            batch.append(record)
            if len(batch) >= batch_size:
                full.append(batch)
                batch = self._batch = []
        return full

    def _start(self, cells: list[str]) -> None:
        self._header, unknown = _read_header(cells)
        self._read_row = self._row_reader(self._header)
        self.summary.layout = layouts.detect_layout(cells)
        self.summary.unknown_columns.extend(unknown)

    def _duplicate(self, contract: str, complaint: str, row: int, previous: int) -> None:
        self._duplicates += 1
        self._warn(
            Issue(row, f"complaint {complaint} of {contract} is also in row {previous}; "
                       f"row {row} wins")
        )  # fmt: skip

    def _row_reader(self, header: _Header) -> Callable[[list[str], int], ComplaintRecord]:
        """The hot path, as a closure over the header's positions and the caches: it runs
        once per row, so every attribute lookup saved counts."""
        width, id_at, contract_at = header.width, header.id_at, header.contract_at
        pick_choices, pick_dates = header.pick_choices, header.pick_dates
        level_at, received_at, columns = header.level_at, header.received_at, header.columns
        has_unknown = bool(header.unknown or header.empty_headed)
        known_contracts, known_choices, known_dates = self._contracts, self._choices, self._dates
        new_contract, new_choices, new_dates = (
            self._contract,
            self._convert_choices,
            self._convert_dates,
        )
        unknown_of = self._unknown

        def read(cells: list[str], row: int) -> ComplaintRecord:
            if len(cells) < width:
                cells = cells + [""] * (width - len(cells))
            complaint_id = cells[id_at].strip()
            if not complaint_id:
                raise _Quarantine("COMPLAINT_ID is empty")
            contract = known_contracts.get(cells[contract_at])
            if contract is None:
                contract = new_contract(cells[contract_at])
            given = pick_choices(cells)
            choices = known_choices.get(given)
            if choices is None:
                choices = new_choices(given, header, row)
            written = pick_dates(cells)
            dates = known_dates.get(written)
            if dates is None:
                dates = new_dates(written, header)
            received = dates[received_at]
            if received is None:
                raise _Quarantine("RECEIVED_DATE is empty")
            level = choices[level_at]
            unknown = _NO_UNKNOWN
            if has_unknown or len(cells) > width:
                unknown = unknown_of(cells, header)
            return ComplaintRecord(
                row, complaint_id, contract, level, level == _IMMEDIATE_NEED,  # type: ignore[arg-type]
                received, unknown, columns, cells, choices, dates,
            )  # fmt: skip

        return read

    def _convert_dates(self, written: tuple[str, ...], header: _Header) -> tuple[date | None, ...]:
        dates = []
        for name, text in zip(header.date_names, written, strict=True):
            stripped = text.strip()
            parsed = parse_date(stripped) if stripped else None
            if stripped and parsed is None:
                raise _Quarantine(f"{name} is not a date (MM/DD/YYYY or YYYY-MM-DD)")
            dates.append(parsed)
        converted = tuple(dates)
        if len(self._dates) < _CACHE_LIMIT:
            self._dates[written] = converted
        return converted

    def _convert_choices(
        self, given: tuple[str, ...], header: _Header, row: int
    ) -> tuple[Value, ...]:
        warned = self.summary.warning_count
        values: list[Value] = []
        for name, text in zip(header.choice_names, given, strict=True):
            if name == "ISSUE_LEVEL":
                values.append(self._issue_level(text, row))
            elif layouts.COLUMNS[name].kind is Kind.ENUM:
                values.append(self._choice(_CHANGE_REQUESTS, name, text, row))
            else:
                values.append(self._choice(_YES_NO, name, text, row))
        converted = tuple(values)
        # Only clean combinations are remembered: a warning must be raised for every row.
        if self.summary.warning_count == warned and len(self._choices) < _CACHE_LIMIT:
            self._choices[given] = converted
        return converted

    def _contract(self, text: str) -> str:
        """The contract of a cell not seen as valid before; only valid ones are cached."""
        checked = self._check_contract(text)
        if checked is not None and len(self._contracts) < _CACHE_LIMIT:
            self._contracts[text] = checked
        if checked is None:
            value = text.strip()
            if not value:
                raise _Quarantine("CONTRACT_ID is empty")
            if not layouts.is_contract_number(value):
                # Not its value: a row whose cells a stray quote shifted may hold PHI there,
                # and the reason is shown to every reader (the cells, sealed, only to those
                # who may read complaints).
                raise _Quarantine(
                    "CONTRACT_ID is not a contract number (e.g. H1234); the row's cells show "
                    "what it holds"
                )
            raise _Quarantine(f"contract {value} is not covered by the key")
        return checked

    def _check_contract(self, text: str) -> str | None:
        value = text.strip()
        if not layouts.is_contract_number(value):
            return None
        if self._allowed is not None and value not in self._allowed:
            return None
        return value

    def _issue_level(self, text: str, row: int) -> str:
        known = _ISSUE_LEVELS.get(text.strip().lower())
        if known is not None:
            return known
        self._warn(
            Issue(row, f"ISSUE_LEVEL {text.strip()[:40]!r} is not a known issue level; "
                       "kept as given and treated as not immediate need")
        )  # fmt: skip
        return text

    def _choice(self, table: Mapping[str, Any], name: str, text: str, row: int) -> Any:
        key = text.strip().lower()
        if key in table:
            return table[key]
        self._warn(Issue(row, f"{name} {text.strip()[:40]!r} is not one of its values; left empty"))
        return None

    def _unknown(self, cells: list[str], header: _Header) -> dict[str, str]:
        extra = {name: cells[position] for position, name in header.unknown}
        positions = [*header.empty_headed, *range(header.width, len(cells))]
        for position in positions:
            value = cells[position]
            if value:
                label = f"column_{position + 1}"
                extra[label] = value
                if label not in self.summary.unknown_columns:
                    self.summary.unknown_columns.append(label)
        return extra


def _skipped(raw: RawRow) -> tuple[str, str, int]:
    """A row the caller skips: its complaint must be known (it was read off the text)."""
    if raw.complaint_id is None or raw.contract_id is None:
        raise ValueError(f"row {raw.row} cannot be skipped: its complaint is unknown")
    return raw.contract_id, raw.complaint_id, raw.row


def _unreadable(text: str) -> str:
    """Why csv could not read a row's text as one record."""
    if len(text) > CELL_LIMIT:
        return CELL_TOO_LONG
    return "the row is not well-formed CSV (a stray quote?)"


def _plain_cell(text: str) -> str | None:
    """A cell's value from its raw text when no parsing is needed: unquoted, or quoted
    with no quote inside; None otherwise."""
    quotes = text.count('"')
    if not quotes:
        return text
    if quotes == 2 and len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return None


def _header_cells(text: str) -> list[str]:
    """The header row's cells, read leniently (as `feed` reads every row)."""
    return next(csv.reader(io.StringIO(text, newline="")), [])


def _cells_of(texts: list[str]) -> list[list[str] | None]:
    """Each record's cells (one record per text); None for a text that is not one
    well-formed record."""
    if not texts:
        return []
    try:
        cells: list[list[str] | None] = list(csv.reader(texts))
        if len(cells) == len(texts):
            return cells
    except csv.Error:
        pass
    found: list[list[str] | None] = []
    for text in texts:
        try:
            one = list(csv.reader([text]))
        except csv.Error:
            found.append(None)
            continue
        found.append(one[0] if len(one) == 1 else [] if not one else None)
    return found


def parse_bytes(
    data: bytes, *, allowed_contracts: Collection[str] | None = None
) -> tuple[list[ComplaintRecord], ParseSummary]:
    """Parse a whole small file held in memory (tests, tiny inputs)."""
    parser = ComplaintParser(allowed_contracts=allowed_contracts)
    records = [record for batch in parser.parse([data]) for record in batch]
    return records, parser.summary


__all__ = [
    "Columns",
    "ComplaintParser",
    "ComplaintRecord",
    "Issue",
    "ParseSummary",
    "RawRow",
    "Value",
    "parse_bytes",
    "parse_date",
]
