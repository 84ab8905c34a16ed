"""`hub ctm parse`: run the parser over a file on disk and describe what would import."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

from hub.ctm.parser import ComplaintParser, Issue, ParseSummary

CHUNK_BYTES = 64 * 1024


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def parse_file(path: Path, *, allowed_contracts: Collection[str] | None = None) -> ParseSummary:
    """Parse the whole file in chunks; raises FileRejected when the file is refused. The
    summary keeps the first `MAX_LISTED` quarantined rows, without their cells (counts
    are whole): a file of a million bad rows is described in flat memory."""
    parser = ComplaintParser(allowed_contracts=allowed_contracts)
    listed: list[Issue] = []
    for chunk in _chunks(path):  # records are dropped: only the summary matters
        parser.feed(chunk)
        _keep(listed, parser.take_quarantined())
    parser.close()
    _keep(listed, parser.take_quarantined())
    parser.summary.quarantined = listed
    return parser.summary


MAX_LISTED = 1000


def _keep(listed: list[Issue], issues: list[Issue]) -> None:
    room = MAX_LISTED - len(listed)
    listed.extend(Issue(issue.row, issue.message) for issue in issues[:room])


def render_summary(name: str, summary: ParseSummary) -> str:
    layout = summary.layout.value if summary.layout else "-"
    lines = [
        f"file:            {name}",
        f"layout:          {layout}",
        f"rows read:       {summary.rows_read}",
        f"rows imported:   {summary.rows_imported}",
        f"quarantined:     {summary.quarantined_count}",
    ]
    lines += [f"  row {issue.row}: {issue.message}" for issue in summary.quarantined]
    lines += _more(summary.quarantined_count - len(summary.quarantined))
    lines.append(f"warnings:        {summary.warning_count}")
    lines += [f"  row {issue.row}: {issue.message}" for issue in summary.warnings]
    lines += _more(summary.warning_count - len(summary.warnings))
    unknown = ", ".join(summary.unknown_columns) or "none"
    lines.append(f"unknown columns: {unknown}")
    return "\n".join(lines)


def _more(count: int) -> list[str]:
    return [f"  … and {count} more"] if count > 0 else []
