"""Small download files for the parser tests, written out so each test shows its file."""

from __future__ import annotations

from hub.ctm.csvstream import RecordWriter
from hub.ctm.layouts import Layout
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
