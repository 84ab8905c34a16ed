"""Whatever text a field holds, writing then parsing gives it back (hypothesis)."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.ctm.layouts import Layout
from hub.ctm.parser import ComplaintParser
from hub.ctm.upload import ResolutionRow, read_upload_file, write_upload_file
from tests.unit.ctm.files import full_file, good_row

# Any character a UTF-8 file can hold (lone surrogates cannot be encoded at all).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
AWKWARD = st.lists(
    st.sampled_from(['"', ",", "\r", "\n", "\r\n", " ", "\t", "\x00", "é", "😀", "a"])
).map("".join)
FREE_TEXT = st.one_of(TEXT, AWKWARD)


@settings(max_examples=150, deadline=None)
@given(
    summary=FREE_TEXT,
    notes=FREE_TEXT,
    notification=FREE_TEXT,
    satisfied=st.sampled_from([True, False, None]),
)
def test_upload_file_round_trips_any_text(
    summary: str, notes: str, notification: str, satisfied: bool | None
) -> None:
    row = ResolutionRow(
        complaint_id="1001",
        contract_id="H1234",
        resolution_date=date(2025, 1, 2),
        resolution_summary=summary,
        casework_notes=notes,
        complainant_satisfied=satisfied,
        resolution_notification=notification,
    )
    (line,) = list(read_upload_file(write_upload_file([row])))
    assert line.errors == []
    assert line.resolution == row


@settings(max_examples=150, deadline=None)
@given(summary=FREE_TEXT, comments=FREE_TEXT, chunk=st.integers(min_value=1, max_value=64))
def test_download_file_round_trips_any_text_whatever_the_chunking(
    summary: str, comments: str, chunk: int
) -> None:
    data = full_file(
        Layout.CURRENT,
        [good_row("1", COMPLAINT_SUMMARY=summary, CMS_COMMENTS=comments), good_row("2")],
    )
    parser = ComplaintParser()
    pieces = (data[i : i + chunk] for i in range(0, len(data), chunk))
    records = [record for batch in parser.parse(pieces) for record in batch]
    assert [r.complaint_id for r in records] == ["1", "2"]
    assert records[0].text("COMPLAINT_SUMMARY") == summary
    assert records[0].text("CMS_COMMENTS") == comments
