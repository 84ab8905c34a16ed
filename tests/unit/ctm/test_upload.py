"""The plan upload file (section 7): layout, escaping, and the checks CMS is modeled to make."""

from __future__ import annotations

from datetime import date

import pytest

from hub.ctm import modeled
from hub.ctm.errors import FileRejected
from hub.ctm.upload import InvalidResolution, ResolutionRow, read_upload_file, write_upload_file


def row(**changes: object) -> ResolutionRow:
    values: dict[str, object] = {
        "complaint_id": "1001",
        "contract_id": "H1234",
        "resolution_date": date(2025, 3, 4),
        "resolution_summary": "Refund issued",
    }
    values.update(changes)
    return ResolutionRow(**values)  # type: ignore[arg-type]


class TestWrite:
    def test_header_and_date_format(self) -> None:
        text = write_upload_file([row(complainant_satisfied=True)]).decode()
        header, first, _ = text.split("\r\n")
        assert header == ",".join(f'"{name}"' for name in modeled.UPLOAD_COLUMNS)
        assert first == '"1001","H1234","03/04/2025","Refund issued","","Y",""'

    def test_quotes_commas_and_line_breaks_are_escaped(self) -> None:
        text = write_upload_file([row(resolution_summary='He said "fine", then\r\nleft')]).decode()
        assert '"He said ""fine"", then\r\nleft"' in text

    def test_summary_limit_counts_characters_not_bytes(self) -> None:
        at_limit = "é" * modeled.UPLOAD_SUMMARY_MAX_CHARS  # 8,000 bytes in UTF-8
        write_upload_file([row(resolution_summary=at_limit)])
        with pytest.raises(InvalidResolution, match="RESOLUTION_SUMMARY is 4001 characters"):
            write_upload_file([row(resolution_summary=at_limit + "é")])

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"resolution_date": None}, "RESOLUTION_DATE is missing"),
            ({"contract_id": "Q1"}, "CONTRACT_ID 'Q1' is not a contract number"),
            ({"complaint_id": " "}, "COMPLAINT_ID is empty"),
        ],
    )
    def test_rows_cms_would_refuse_are_refused_naming_the_field(
        self, changes: dict[str, object], message: str
    ) -> None:
        with pytest.raises(InvalidResolution, match=message):
            write_upload_file([row(**changes)])

    def test_repr_hides_the_summary(self) -> None:
        assert "Refund" not in repr(row())


SIX_COLUMNS = (
    b"COMPLAINT_ID,CONTRACT_ID,RESOLUTION_DATE,RESOLUTION_SUMMARY,"
    b"CMS_PLAN_CASEWORK_NOTES,COMPLAINANT_SATISFIED\r\n"
)


class TestRead:
    def test_bad_rows_are_reported_with_their_errors(self) -> None:
        data = write_upload_file(
            [
                row(),
                row(complaint_id="2", resolution_date=None),
                row(resolution_summary="x" * 4001),
            ],
            check=False,
        )
        lines = list(read_upload_file(data))
        assert [line.errors for line in lines] == [
            [],
            ["RESOLUTION_DATE is missing"],
            ["RESOLUTION_SUMMARY is 4001 characters; at most 4000"],
        ]

    def test_bad_date_and_satisfied_values(self) -> None:
        header = ",".join(modeled.UPLOAD_COLUMNS)
        data = f"{header}\r\n1,H1234,2025-03-04,ok,,maybe,\r\n".encode()
        (line,) = list(read_upload_file(data))
        assert line.errors == [
            "RESOLUTION_DATE is not MM/DD/YYYY",
            "COMPLAINANT_SATISFIED must be Y, N or blank",
        ]

    def test_missing_column_rejects_the_file(self) -> None:
        with pytest.raises(FileRejected, match="missing required column RESOLUTION_NOTIFICATION"):
            list(read_upload_file(SIX_COLUMNS))

    def test_empty_upload_is_rejected(self) -> None:
        with pytest.raises(FileRejected, match="empty file"):
            list(read_upload_file(b""))
