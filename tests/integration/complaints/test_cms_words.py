"""The safe form of CMS's words about an upload: what events, logs and PHI-free fields carry
instead of CMS's text, which may quote the file or CMS's records."""

from __future__ import annotations

import pytest

from hub.complaints.cms_words import MASK, safe_form


class TestSafeForm:
    @pytest.mark.parametrize(
        "said",
        [
            "contract H1234 is not covered by this key",
            "complaint 123400471902 is not a complaint of H1234",
            "RESOLUTION_DATE is not MM/DD/YYYY",
            "COMPLAINANT_SATISFIED must be Y, N or blank",
            "RESOLUTION_SUMMARY is 4100 characters; at most 4,000",
            "CMS refused the whole upload file (400): The file does not match the plan upload "
            "layout",
            "missing required column RESOLUTION_DATE",
        ],
    )
    def test_an_error_of_known_words_and_identifiers_is_kept_as_said(self, said: str) -> None:
        assert safe_form(said, identifiers={"123400471902"}) == said

    @pytest.mark.parametrize(
        ("said", "safe"),
        [
            (
                "RESOLUTION_SUMMARY 'Mrs Jane Doe called about her insulin' is not allowed",
                f"RESOLUTION_SUMMARY {MASK} is not allowed",
            ),
            (
                "row 2: beneficiary Doe, Jane (MBI 1EG4-TE5-MK73) is not on file",
                f"row 2: beneficiary {MASK} is not on file",
            ),
            ("date of birth 01/02/1950 does not match", f"date of {MASK} does not match"),
            ("SSN 123-45-6789 found", f"{MASK} found"),
            ("the number at 555 0142 is not valid", f"the number at {MASK} is not valid"),
            ("limit 4000 characters", "limit 4000 characters"),
            ("Jane Doe", MASK),
        ],
    )
    def test_every_other_word_is_masked(self, said: str, safe: str) -> None:
        assert safe_form(said) == safe

    def test_only_the_given_identifiers_pass(self) -> None:
        assert safe_form("complaint CTM-7 is closed") == f"complaint {MASK} is closed"
        assert safe_form("complaint CTM-7 is closed", identifiers={"CTM-7"}) == (
            "complaint CTM-7 is closed"
        )

    def test_it_is_bounded(self) -> None:
        assert len(safe_form("the " * 1000)) == 500
