"""The parser's triage mode (rows first, parsed on demand), as syncs drive it.

Parsing every row through `feed_rows` + `complete` must give exactly what `feed` gives;
skipping rows must only leave those rows unparsed (they still count, and still take part in
finding duplicates); a row's text must be what the sync fingerprints, the same however the
file is cut into chunks.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.ctm.errors import FileRejected, FileTruncated
from hub.ctm.layouts import Layout
from hub.ctm.parser import ComplaintParser, RawRow, parse_bytes
from tests.unit.ctm import test_parser
from tests.unit.ctm.files import MINIMAL, full_file, good_row, lines, parse_triaged
from tests.unit.ctm.test_roundtrip import FREE_TEXT


def _same(data: bytes, **options: object) -> None:
    """Triage without skips reads the file exactly as `feed` does."""
    try:
        expected = parse_bytes(data, **options)  # type: ignore[arg-type]
    except (FileRejected, FileTruncated) as error:
        with pytest.raises(type(error), match=str(error)):
            parse_triaged(data, **options)  # type: ignore[arg-type]
        return
    got = parse_triaged(data, **options)  # type: ignore[arg-type]
    assert [(r.row, r.values, dict(r.unknown)) for r in got[0]] == [
        (r.row, r.values, dict(r.unknown)) for r in expected[0]
    ]
    assert got[1].as_json() == expected[1].as_json()
    assert [i.cells for i in got[1].quarantined] == [i.cells for i in expected[1].quarantined]


@pytest.fixture
def triage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser rules' tests once more, through triage (every row parsed)."""
    monkeypatch.setattr(test_parser, "parse_bytes", parse_triaged)


@pytest.mark.usefixtures("triage")
class TestEveryParserRuleHoldsInTriage(
    test_parser.TestEncodingAndLineEnds,
    test_parser.TestHeaders,
    test_parser.TestLayouts,
    test_parser.TestDates,
    test_parser.TestRows,
    test_parser.TestValues,
    test_parser.TestEmptyAndTruncated,
):
    """The rule tests of test_parser.py, with `parse_bytes` swapped for triage."""


def rows_of(data: bytes) -> list[RawRow]:
    parser = ComplaintParser()
    return [r for batch in [*parser.feed_rows(data), *parser.close_rows()] for r in batch]


class TestRowText:
    def test_text_is_the_record_as_written_without_its_line_end(self) -> None:
        written = ["1,H1234,Urgent,1/2/2025", '"2","H1234","a ""b""",1/2/2025']
        assert [r.text for r in rows_of(lines(MINIMAL, *written))] == written

    def test_keys_are_read_off_the_text_where_that_is_certain(self) -> None:
        written = [
            "1,H1234,Urgent,1/2/2025", '"2","H1234",Urgent,1/2/2025',
            '" 3 ",H1234,Urgent,1/2/2025', '"4,x",H1234,Urgent,1/2/2025',
            'x"5",H1234,Urgent,1/2/2025', "6,H9999,Urgent,1/2/2025", "7,nope,Urgent,1/2/2025",
            ",H1234,Urgent,1/2/2025",
        ]  # fmt: skip
        parser = ComplaintParser(allowed_contracts={"H1234"})
        rows = [r for b in [*parser.feed_rows(lines(MINIMAL, *written)), *parser.close_rows()]
                for r in b]  # fmt: skip
        assert [(r.complaint_id, r.contract_id) for r in rows] == [
            ("1", "H1234"), ("2", "H1234"), ("3", "H1234"), (None, None), (None, None),
            (None, None), (None, None), (None, None),
        ]  # fmt: skip

    def test_a_record_over_several_lines_is_one_row(self) -> None:
        data = full_file(Layout.CURRENT, [good_row("1", COMPLAINT_SUMMARY="a\r\nb\nc\rd")])
        parser = ComplaintParser()
        (row,) = [r for b in [*parser.feed_rows(data), *parser.close_rows()] for r in b]
        assert '"a\r\nb\nc\rd"' in row.text
        assert (row.complaint_id, row.contract_id) == ("1", "H1234")
        (record,) = parser.complete([row])
        assert record.text("COMPLAINT_SUMMARY") == "a\r\nb\nc\rd"

    def test_a_stray_quote_joining_rows_quarantines_them_as_one_with_their_text(self) -> None:
        data = lines(MINIMAL, '1,H1234,Urg"ent,1/2/2025', "2,H1234,Urgent,1/2/2025",
                     '3,H1234,Urg"ent,1/2/2025', "4,H1234,Urgent,1/2/2025")  # fmt: skip
        records, summary = parse_triaged(data)
        assert [r.complaint_id for r in records] == ["4"]
        (issue,) = summary.quarantined
        assert (issue.row, issue.message) == (1, "the row is not well-formed CSV (a stray quote?)")
        assert issue.cells == (
            '1,H1234,Urg"ent,1/2/2025\r\n2,H1234,Urgent,1/2/2025\r\n3,H1234,Urg"ent,1/2/2025',
        )

    def test_bare_cr_line_ends_split_rows(self) -> None:
        data = lines(MINIMAL, "1,H1234,Urgent,1/2/2025", "2,H1234,x,1/2/2025", newline="\r")
        records, summary = parse_triaged(data)
        assert [r.complaint_id for r in records] == ["1", "2"]
        assert summary.rows_read == 2

    @settings(max_examples=100, deadline=None)
    @given(summary=FREE_TEXT, chunk=st.integers(min_value=1, max_value=64))
    def test_text_is_the_same_however_the_file_is_cut(self, summary: str, chunk: int) -> None:
        data = full_file(Layout.CURRENT, [good_row("1", COMPLAINT_SUMMARY=summary), good_row("2")])

        def texts(size: int) -> list[str]:
            parser = ComplaintParser()
            found: list[RawRow] = []
            for start in range(0, len(data), size):
                for batch in parser.feed_rows(data[start : start + size]):
                    found += batch
            for batch in parser.close_rows():
                found += batch
            return [r.text for r in found]

        assert texts(chunk) == texts(len(data))


class TestSkipping:
    def test_skipped_rows_are_not_parsed_but_counted(self) -> None:
        data = lines(MINIMAL, *(f"{n},H1234,Urgent,1/2/2025" for n in range(6)))
        # The first row of each batch is "unchanged".
        records, summary = parse_triaged(data, batch_size=2, skip=lambda batch: {0})
        assert [r.complaint_id for r in records] == ["1", "3", "5"]
        assert summary.rows_read == 6
        assert summary.rows_imported == 6

    def test_a_skipped_row_still_finds_its_duplicate(self) -> None:
        data = lines(MINIMAL, "0,H1234,Urgent,1/2/2025", "7,H1234,Urgent,1/2/2025",
                     "7,H1234,Urgent,1/2/2025")  # fmt: skip
        records, summary = parse_triaged(
            data, batch_size=1, skip=lambda batch: {0} if batch[0].row == 2 else set()
        )
        assert [r.row for r in records] == [1, 3]  # row 2 was skipped, and still counts
        assert [(w.row, w.message) for w in summary.warnings] == [
            (3, "complaint 7 of H1234 is also in row 2; row 3 wins")
        ]
        assert summary.rows_imported == 2

    def test_a_row_whose_complaint_is_unknown_cannot_be_skipped(self) -> None:
        parser = ComplaintParser()
        (batch,) = [*parser.feed_rows(lines(MINIMAL, '"1,",H1234,Urgent,1/2/2025')),
                    *parser.close_rows()]  # fmt: skip
        with pytest.raises(ValueError, match="row 1 cannot be skipped"):
            parser.complete(batch, {0})

    def test_a_bad_row_found_after_the_file_closed_still_counts(self) -> None:
        parser = ComplaintParser()
        assert parser.feed_rows(lines(MINIMAL, "1,H1234,Urgent,1/2/2025", "2,H1234,Urgent,x")) == []
        (batch,) = parser.close_rows()
        parser.complete(batch)
        assert parser.summary.rows_imported == 1
        assert [i.row for i in parser.summary.quarantined] == [2]

    def test_a_row_csv_cannot_read_is_quarantined_with_its_text(self) -> None:
        parser = ComplaintParser()
        (batch,) = [*parser.feed_rows(lines(MINIMAL, "1,H1234,Urgent,1/2/2025")),
                    *parser.close_rows()]  # fmt: skip
        batch[0].text, batch[0].cells = "1,H1234\n,Urgent", None  # as no splitter cuts it
        assert parser.complete(batch) == []
        (issue,) = parser.summary.quarantined
        assert (issue.row, issue.message) == (1, "the row is not well-formed CSV (a stray quote?)")
        assert issue.cells == ("1,H1234\n,Urgent",)


ROW = st.fixed_dictionaries(
    {"COMPLAINT_SUMMARY": FREE_TEXT, "CMS_COMMENTS": FREE_TEXT,
     "ISSUE_LEVEL": st.sampled_from(["Standard", "Immediate Need", "odd", ""]),
     "RECEIVED_DATE": st.sampled_from(["01/02/2025", "2025-01-02", "", "nope"]),
     "COMPLAINT_ID": st.sampled_from(["1", "2", "3", " 4 ", "", '5"'])}
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(ROW, max_size=8),
    newline=st.sampled_from(["\r\n", "\n", "\r"]),
    blank=st.booleans(),
    chunk=st.integers(min_value=1, max_value=200),
)
def test_triage_reads_any_file_as_feed_does(
    rows: list[dict[str, str]], newline: str, blank: bool, chunk: int
) -> None:
    data = full_file(Layout.CURRENT, [good_row(**r) for r in rows])
    if newline != "\r\n":
        data = data.replace(b'"\r\n"', f'"{newline}"'.encode()).replace(
            b'"\r\n', f'"{newline}'.encode()
        )
    if blank:
        data += b"\r\n,,,\r\n"
    _same(data)
    expected = parse_bytes(data)
    got = parse_triaged(data, chunk=chunk)
    assert [r.values for r in got[0]] == [r.values for r in expected[0]]


class TestFlatMemory:
    def test_quarantined_rows_can_be_taken_as_they_come(self) -> None:
        parser = ComplaintParser(batch_size=2)
        data = lines(MINIMAL, *(f"{n},H1234,Urgent,bad" for n in range(1, 6)))
        taken = []
        for batch in parser.feed_rows(data):
            parser.complete(batch)
            taken += parser.take_quarantined()
        for batch in parser.close_rows():
            parser.complete(batch)
            taken += parser.take_quarantined()
        assert [i.row for i in taken] == [1, 2, 3, 4, 5]
        assert parser.summary.quarantined == []
        assert parser.summary.quarantined_count == 5
        assert parser.summary.rows_imported == 0

    def test_warnings_past_the_kept_number_are_counted(self) -> None:
        from hub.ctm.records import MAX_KEPT_WARNINGS

        count = MAX_KEPT_WARNINGS + 5
        data = lines(MINIMAL, *(f"{n},H1234,Odd{n},1/2/2025" for n in range(count)))
        records, summary = parse_bytes(data)
        assert len(records) == count
        assert summary.warning_count == count
        assert len(summary.warnings) == MAX_KEPT_WARNINGS
        assert summary.warnings[0].row == 1


def _joined_one_line_at_a_time(lines_: list[str]) -> list[str]:
    """The plain reading `_joined` must agree with: a line with an odd count of quotes
    opens a record that goes on until the quotes balance."""
    records, pending = [], None
    for line in lines_:
        if pending is None:
            if line.count('"') % 2:
                pending = line
            else:
                records.append(line)
        else:
            pending += "\r\n" + line
            if pending.count('"') % 2 == 0:
                records.append(pending)
                pending = None
    return records if pending is None else [*records, pending]


@given(st.lists(st.text(alphabet='ab,"', max_size=8), max_size=12))
def test_crlf_lines_join_into_records_as_read_one_line_at_a_time(lines_: list[str]) -> None:
    from hub.ctm.csvstream import _joined

    assert _joined(lines_) == _joined_one_line_at_a_time(lines_)
