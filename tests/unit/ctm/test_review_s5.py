"""Defects found by the session-5 review of hub/ctm, each proven here before its fix."""

from __future__ import annotations

import csv
import io
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.ctm import csvstream
from hub.ctm.csvstream import CELL_LIMIT, RecordSplitter
from hub.ctm.errors import FileRejected
from hub.ctm.layouts import Layout
from hub.ctm.parser import ComplaintParser, parse_bytes
from tests.unit.ctm.files import MINIMAL, full_file, good_row, lines, parse_triaged

CHUNK = 4096


def _feed_all(data: bytes, *, triage: bool) -> tuple[int, float]:
    """Records parsed from `data` fed in small chunks, and the seconds it took."""
    started = time.perf_counter()
    if triage:
        records, _ = parse_triaged(data, chunk=CHUNK)
        return len(records), time.perf_counter() - started
    parser = ComplaintParser()
    count = 0
    for start in range(0, len(data), CHUNK):
        count += sum(len(batch) for batch in parser.feed(data[start : start + CHUNK]))
    count += sum(len(batch) for batch in parser.close())
    return count, time.perf_counter() - started


class TestSplitterIsLinear:
    """The splitter looked for a cut by counting quotes from the start of the unfinished
    record at every line end of every chunk: a record spanning many chunks (one unbalanced
    quote, or a huge cell with line breaks) made a download quadratic or worse (20,000 rows
    after a stray quote: 14 s; 40,000: 135 s), so a sync ran into its job timeout forever."""

    @pytest.mark.parametrize("triage", [False, True], ids=["feed", "triage"])
    def test_a_stray_quote_does_not_make_the_rest_of_the_file_quadratic(self, triage: bool) -> None:
        rows = ['1,H1234,Urgent,1/2/2025,He is 5" tall'] + [
            f"{n},H1234,Urgent,1/2/2025,x" for n in range(2, 20_001)
        ]
        data = lines(MINIMAL + ",NOTE", *rows)
        count, seconds = _feed_all(data, triage=triage)
        assert count == 20_000
        assert seconds < 5.0  # linear: well under a second; it took 14 s and more

    @pytest.mark.parametrize("triage", [False, True], ids=["feed", "triage"])
    @pytest.mark.parametrize("line_end", ["\n", "\r"], ids=["lf", "bare-cr"])
    def test_a_big_cell_with_many_line_breaks_is_read_in_linear_time(
        self, triage: bool, line_end: str
    ) -> None:
        summary = line_end.join(["a"] * 60_000)  # 120,000 characters, under csv's limit
        data = full_file(Layout.CURRENT, [good_row("1", COMPLAINT_SUMMARY=summary), good_row()])
        count, seconds = _feed_all(data, triage=triage)
        assert count == 2
        assert seconds < 5.0


def _split(data: bytes, size: int) -> list[list[str]] | str:
    splitter = RecordSplitter()
    try:
        records = [r for s in range(0, len(data), size) for r in splitter.feed(data[s : s + size])]
        return records + splitter.close()
    except FileRejected as error:
        return str(error)


CELLS = st.lists(st.lists(st.text(alphabet='a,"\r\né', max_size=6), min_size=1, max_size=3))


@settings(max_examples=300, deadline=None)
@given(rows=CELLS, ends=st.sampled_from(["\r\n", "\n", "\r"]), size=st.integers(1, 7))
def test_records_are_the_same_however_the_bytes_are_cut(
    rows: list[list[str]], ends: str, size: int
) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator=ends).writerows(rows)
    data = out.getvalue().encode()
    assert _split(data, size) == _split(data, max(len(data), 1))


class TestBigCells:
    """csv.reader refuses a cell over 131,072 characters: a long summary raised a bare
    `_csv.Error` out of `feed` (the whole file failed with "internal error"), and in triage
    the row was quarantined as "not well-formed CSV (a stray quote?)", which it was not."""

    @pytest.mark.parametrize("triage", [False, True], ids=["feed", "triage"])
    def test_a_cell_longer_than_csv_default_limit_imports_exactly(self, triage: bool) -> None:
        summary = "a long summary, " * 20_000  # 320,000 characters
        data = full_file(Layout.CURRENT, [good_row("1", COMPLAINT_SUMMARY=summary), good_row()])
        if triage:
            records, summary_ = parse_triaged(data, chunk=CHUNK)
        else:
            records, summary_ = parse_bytes(data)
        assert [r.complaint_id for r in records] == ["1", "1001"]
        assert records[0].text("COMPLAINT_SUMMARY") == summary
        assert summary_.quarantined_count == 0

    def test_a_cell_beyond_the_limit_quarantines_its_row_saying_why(self) -> None:
        huge = "x" * (CELL_LIMIT + 1)
        data = full_file(Layout.CURRENT, [good_row("1", COMPLAINT_SUMMARY=huge), good_row()])
        records, summary = parse_triaged(data, chunk=CHUNK)
        assert [r.complaint_id for r in records] == ["1001"]
        (issue,) = summary.quarantined
        assert issue.row == 1
        assert issue.message == f"a cell is longer than {CELL_LIMIT:,} characters"

    def test_feed_refuses_a_cell_beyond_the_limit_with_a_typed_error(self) -> None:
        huge = "x" * (CELL_LIMIT + 1)
        data = full_file(Layout.CURRENT, [good_row("1", COMPLAINT_SUMMARY=huge)])
        with pytest.raises(FileRejected, match="longer than"):
            parse_bytes(data)


class TestStrayQuoteStreams:
    """One unbalanced quote in an unquoted cell (csv reads it as a character) left every
    later line end "inside quotes" by the splitter's count: the rest of the file was held
    until its end and read there at once (+307 MiB for a 54 MB file), breaking flat memory."""

    @pytest.mark.parametrize("triage", [False, True], ids=["feed", "triage"])
    def test_rows_after_a_stray_quote_still_stream_out_before_the_end(self, triage: bool) -> None:
        count = 30_000
        rows = ['1,H1234,Urgent,1/2/2025,He is 5" tall'] + [
            f"{n},H1234,Urgent,1/2/2025,{'y' * 100}" for n in range(2, count + 1)
        ]
        data = lines(MINIMAL + ",NOTE", *rows)
        parser = ComplaintParser()
        before_end = 0
        for start in range(0, len(data), 65536):
            piece = data[start : start + 65536]
            if triage:
                before_end += sum(len(parser.complete(b)) for b in parser.feed_rows(piece))
            else:
                before_end += sum(len(b) for b in parser.feed(piece))
        closing = parser.close_rows() if triage else parser.close()
        at_end = sum(len(parser.complete(b) if triage else b) for b in closing)
        assert before_end + at_end == count
        assert parser.summary.quarantined_count == 0
        assert before_end >= count * 0.8


@settings(max_examples=300, deadline=None)
@given(rows=CELLS, ends=st.sampled_from(["\r\n", "\n", "\r"]), size=st.integers(1, 7))
def test_records_read_by_csv_past_the_recheck_size_are_the_same(
    rows: list[list[str]], ends: str, size: int
) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator=ends).writerows(rows)
    data = out.getvalue().encode()
    whole = _split(data, max(len(data), 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csvstream, "RECHECK_CHARS", 3)
        assert _split(data, size) == whole
        assert _raw_split(data, size) == _raw_split(data, max(len(data), 1))


def _raw_split(data: bytes, size: int) -> list[list[str]] | str:
    """`feed_raw` + `close_raw`, each record that is a row as its cells."""
    splitter = RecordSplitter()
    try:
        found = [
            r for s in range(0, len(data), size) for r in splitter.feed_raw(data[s : s + size])
        ]
        found += splitter.close_raw()
    except FileRejected as error:
        return str(error)
    cells = [r if isinstance(r, list) else next(csv.reader([r]), []) for r in found]
    return [r for r in cells if any(r)]  # blank records are no rows (and may differ)
