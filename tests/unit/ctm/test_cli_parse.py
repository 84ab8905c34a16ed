"""`hub ctm parse FILE [--json]`: what a plan's analyst sees before trusting a file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hub.cli import main
from tests.unit.ctm.files import MINIMAL, lines

SAMPLE = lines(
    MINIMAL + ",REGION",
    "1,H1234,Urgent,01/02/2025,West",
    "2,H1234,Urgent,02/30/2025,East",
    "1,H1234,Strange,01/03/2025,West",
)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["ctm", "parse", *args])
    return result.exit_code, result.stdout, result.stderr


class TestCtmParse:
    def test_text_summary(self, tmp_path: Path) -> None:
        path = tmp_path / "download.csv"
        path.write_bytes(SAMPLE)
        code, out, _ = run(str(path))
        assert code == 0
        assert "layout:          current" in out
        assert "rows read:       3" in out
        assert "rows imported:   1" in out
        assert "row 2: RECEIVED_DATE is not a date" in out
        assert "row 3: complaint 1 of H1234 is also in row 1; row 3 wins" in out
        assert "unknown columns: REGION" in out

    def test_json_summary_has_the_stable_keys(self, tmp_path: Path) -> None:
        path = tmp_path / "download.csv"
        path.write_bytes(SAMPLE)
        code, out, _ = run(str(path), "--json")
        assert code == 0
        report = json.loads(out)
        assert list(report) == [
            "layout", "rows_read", "rows_imported", "quarantined", "warnings", "unknown_columns",
        ]  # fmt: skip
        assert report["quarantined"] == [
            {"row": 2, "reason": "RECEIVED_DATE is not a date (MM/DD/YYYY or YYYY-MM-DD)"}
        ]
        assert [w["row"] for w in report["warnings"]] == [3, 3]
        assert report["unknown_columns"] == ["REGION"]

    def test_contract_option_quarantines_other_contracts(self, tmp_path: Path) -> None:
        path = tmp_path / "download.csv"
        path.write_bytes(lines(MINIMAL, "1,H1234,Urgent,1/2/2025", "2,S5678,Urgent,1/2/2025"))
        code, out, _ = run(str(path), "--json", "--contract", "H1234")
        assert code == 0
        assert json.loads(out)["quarantined"] == [
            {"row": 2, "reason": "contract S5678 is not covered by the key"}
        ]

    def test_rejected_file_exits_1_with_the_error_on_stderr(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.csv"
        path.write_bytes(lines("COMPLAINT_ID,CONTRACT_ID,ISSUE_LEVEL", "1,H1234,Urgent"))
        code, out, err = run(str(path), "--json")
        assert code == 1
        assert out == ""
        assert "rejected: missing required column RECEIVED_DATE" in err

    def test_empty_file_is_rejected(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
        code, _, err = run(str(path))
        assert code == 1
        assert "rejected: empty file" in err

    def test_a_file_of_many_bad_rows_lists_the_first_and_counts_them_all(
        self, tmp_path: Path
    ) -> None:
        from hub.ctm.report import MAX_LISTED

        count = MAX_LISTED + 7
        path = tmp_path / "download.csv"
        path.write_bytes(lines(MINIMAL, *(f"{n},H1234,Urgent,bad" for n in range(count))))
        code, out, _ = run(str(path))
        assert code == 0
        assert f"quarantined:     {count}" in out
        assert f"row {MAX_LISTED}: RECEIVED_DATE is not a date" in out
        assert f"row {MAX_LISTED + 1}: " not in out
        assert "  … and 7 more" in out
