"""Layouts as data (section 6): order, the memo's two changes, required columns, PHI."""

from __future__ import annotations

import pytest

from hub.ctm import layouts
from hub.ctm.layouts import Kind, Layout


def names(layout: Layout) -> list[str]:
    return [column.name for column in layouts.LAYOUT_COLUMNS[layout]]


class TestLayouts:
    def test_current_layout_has_swift_between_congressional_information_and_agent_broker(
        self,
    ) -> None:
        current = names(Layout.CURRENT)
        at = current.index("CONGRESSIONAL_INFORMATION")
        assert current[at : at + 3] == [
            "CONGRESSIONAL_INFORMATION",
            "SWIFT",
            "SWIFT_CONTROL_NUMBER",
        ]
        assert current[at + 3] == "AGENT_BROKER"
        assert len(current) == 38

    def test_legacy_layout_differs_only_by_the_memo_changes(self) -> None:
        legacy = names(Layout.LEGACY)
        current = names(Layout.CURRENT)
        assert "SWIFT" not in legacy
        assert "SWIFT_CONTROL_NUMBER" not in legacy
        renamed = [
            "CMS_ISSUE_CHANGE_REQUESTS" if n == "CMS_LEAD_CHANGE_REQUESTS" else n for n in current
        ]
        assert legacy == [n for n in renamed if not n.startswith("SWIFT")]

    def test_required_columns(self) -> None:
        assert layouts.REQUIRED_COLUMNS == (
            "COMPLAINT_ID",
            "CONTRACT_ID",
            "ISSUE_LEVEL",
            "RECEIVED_DATE",
        )

    def test_kinds_and_phi(self) -> None:
        assert layouts.COLUMNS["RECEIVED_DATE"].kind is Kind.DATE
        assert layouts.COLUMNS["COMPLAINANT_SATISFIED"].kind is Kind.YES_NO
        assert layouts.COLUMNS["CMS_LEAD_CHANGE_REQUESTS"].choices == (
            "Pending",
            "Approved",
            "Rejected",
        )
        for column in (
            "BENE_IDENTIFIER",
            "CONTACT_FIRST_NAME",
            "CONTACT_PHONE_NUMBER",
            "COMPLAINT_SUMMARY",
        ):
            assert column in layouts.PHI_COLUMNS
        assert "COMPLAINT_ID" not in layouts.PHI_COLUMNS


class TestFolding:
    @pytest.mark.parametrize(
        "header",
        [
            "SWIFT control number",
            "swift_control_number",
            " Swift - Control\tNumber ",
            "SWIFT__CONTROL NUMBER",
        ],
    )
    def test_header_variants_fold_to_one_name(self, header: str) -> None:
        assert layouts.canonical_name(header) == "SWIFT_CONTROL_NUMBER"

    def test_legacy_lead_column_is_an_alias(self) -> None:
        assert layouts.canonical_name("CMS_ISSUE_CHANGE_REQUESTS") == "CMS_LEAD_CHANGE_REQUESTS"

    def test_unknown_header(self) -> None:
        assert layouts.canonical_name("PLAN_REGION") is None

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            (["COMPLAINT_ID", "CMS_ISSUE_CHANGE_REQUESTS"], Layout.LEGACY),
            (["COMPLAINT_ID", "SWIFT", "CMS_ISSUE_CHANGE_REQUESTS"], Layout.CURRENT),
            (["COMPLAINT_ID", "SWIFT control number", "CMS_ISSUE_CHANGE_REQUESTS"], Layout.CURRENT),
            (["COMPLAINT_ID", "CMS_LEAD_CHANGE_REQUESTS"], Layout.CURRENT),
            (["COMPLAINT_ID"], Layout.CURRENT),
        ],
    )
    def test_layout_detection(self, headers: list[str], expected: Layout) -> None:
        assert layouts.detect_layout(headers) is expected
