"""Small download files for the parser tests, written out so each test shows its file."""

from __future__ import annotations

from collections.abc import Callable, Collection

from hub.ctm.csvstream import RecordWriter
from hub.ctm.dedupe import DEFAULT_MEMORY_KEYS
from hub.ctm.layouts import Layout
from hub.ctm.parser import ComplaintParser, ComplaintRecord, ParseSummary, RawRow
from hub.ctm.simulator import data

MINIMAL = "COMPLAINT_ID,CONTRACT_ID,ISSUE_LEVEL,RECEIVED_DATE"


def lines(*rows: str, newline: str = "\r\n") -> bytes:
    """A file from literal lines (each already CSV)."""
    return (newline.join(rows) + newline).encode("utf-8")


def full_file(layout: Layout, rows: list[dict[str, str]]) -> bytes:
    """A file in a whole layout, every field quoted; missing cells are empty."""
    writer = RecordWriter()
    header = data.header(layout)
    names = [column.name for column in data.LAYOUT_COLUMNS[layout]]
    out = [writer.encode(header)]
    for row in rows:
        out.append(writer.encode([row.get(name, "") for name in names]))
    return b"".join(out)


def good_row(complaint_id: str = "1001", **cells: str) -> dict[str, str]:
    row = {
        "COMPLAINT_ID": complaint_id,
        "CONTRACT_ID": "H1234",
        "ISSUE_LEVEL": "Standard",
        "RECEIVED_DATE": "01/02/2025",
    }
    row.update(cells)
    return row


def parse_triaged(
    data: bytes,
    *,
    allowed_contracts: Collection[str] | None = None,
    chunk: int | None = None,
    skip: Callable[[list[RawRow]], set[int]] = lambda batch: set(),
    memory_keys: int = DEFAULT_MEMORY_KEYS,
    batch_size: int = 500,
) -> tuple[list[ComplaintRecord], ParseSummary]:
    """Parse as a sync does: rows first (`feed_rows`), each batch completed before the
    next is fed, the positions `skip` names left unparsed."""
    parser = ComplaintParser(
        allowed_contracts=allowed_contracts, memory_keys=memory_keys, batch_size=batch_size
    )
    size = chunk or max(len(data), 1)
    records: list[ComplaintRecord] = []
    try:
        for start in range(0, len(data), size):
            for batch in parser.feed_rows(data[start : start + size]):
                records += parser.complete(batch, skip(batch))
        for batch in parser.close_rows():
            records += parser.complete(batch, skip(batch))
    finally:
        parser.finish()
    return records, parser.summary
