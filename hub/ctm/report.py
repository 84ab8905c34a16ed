"""`hub ctm parse`: run the parser over a file on disk and describe what would import."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

from hub.ctm.parser import ComplaintParser, ParseSummary

CHUNK_BYTES = 64 * 1024


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def parse_file(path: Path, *, allowed_contracts: Collection[str] | None = None) -> ParseSummary:
    """Parse the whole file in chunks; raises FileRejected when the file is refused."""
    parser = ComplaintParser(allowed_contracts=allowed_contracts)
    for _ in parser.parse(_chunks(path)):
        pass  # records are dropped: only the summary matters here
    return parser.summary


def render_summary(name: str, summary: ParseSummary) -> str:
    layout = summary.layout.value if summary.layout else "-"
    lines = [
        f"file:            {name}",
        f"layout:          {layout}",
        f"rows read:       {summary.rows_read}",
        f"rows imported:   {summary.rows_imported}",
        f"quarantined:     {len(summary.quarantined)}",
    ]
    lines += [f"  row {issue.row}: {issue.message}" for issue in summary.quarantined]
    lines.append(f"warnings:        {len(summary.warnings)}")
    lines += [f"  row {issue.row}: {issue.message}" for issue in summary.warnings]
    unknown = ", ".join(summary.unknown_columns) or "none"
    lines.append(f"unknown columns: {unknown}")
    return "\n".join(lines)
