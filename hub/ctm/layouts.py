"""The plan download file's layouts (CTM-API.md section 6) as data, and the value rules.

A layout is an ordered tuple of columns; each column knows its kind (date, enum, Y/N, text),
whether a file must have it, and whether it holds protected health information.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final


class Kind(enum.Enum):
    TEXT = "text"
    DATE = "date"
    ENUM = "enum"
    YES_NO = "Y/N"


class Layout(enum.StrEnum):
    CURRENT = "current"
    LEGACY = "legacy"


class IssueLevel(enum.StrEnum):
    IMMEDIATE_NEED = "Immediate Need"
    URGENT = "Urgent"
    STANDARD = "Standard"


class ChangeRequest(enum.StrEnum):
    PENDING = "Pending"
    APPROVED = "Approved"
    REJECTED = "Rejected"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind = Kind.TEXT
    is_required: bool = False
    has_phi: bool = False
    choices: tuple[str, ...] = ()


CONTRACT_PATTERN: Final = re.compile(r"[HRSEFX9][0-9]{4}")
CHANGE_REQUEST_CHOICES: Final = tuple(c.value for c in ChangeRequest)
ISSUE_LEVEL_CHOICES: Final = tuple(level.value for level in IssueLevel)
# "Blank" is how CTM writes "no change request"; an empty cell means the same.
BLANK_WORDS: Final = frozenset({"", "blank"})
YES_WORDS: Final = frozenset({"y", "yes"})
NO_WORDS: Final = frozenset({"n", "no"})

LEGACY_LEAD_COLUMN: Final = "CMS_ISSUE_CHANGE_REQUESTS"
LEAD_COLUMN: Final = "CMS_LEAD_CHANGE_REQUESTS"
SWIFT_COLUMNS: Final = ("SWIFT", "SWIFT_CONTROL_NUMBER")


def _text(name: str, *, phi: bool = False) -> Column:
    return Column(name, Kind.TEXT, has_phi=phi)


def _yes_no(name: str) -> Column:
    return Column(name, Kind.YES_NO)


def _change(name: str) -> Column:
    return Column(name, Kind.ENUM, choices=CHANGE_REQUEST_CHOICES)


def _date(name: str, *, required: bool = False) -> Column:
    return Column(name, Kind.DATE, is_required=required)


_BEFORE_SWIFT: Final = (
    Column("COMPLAINT_ID", is_required=True),
    Column("CONTRACT_ID", is_required=True),
    _text("PLAN_ID"),
    Column("ISSUE_LEVEL", Kind.ENUM, is_required=True, choices=ISSUE_LEVEL_CHOICES),
    _date("RECEIVED_DATE", required=True),
    _date("ASSIGNMENT_DATE"),
    _text("COMPLAINT_CATEGORY"),
    _text("COMPLAINT_SUBCATEGORY"),
    _text("COMPLAINT_SUBCATEGORY_OTHER", phi=True),
    _text("COMPLAINT_TYPE"),
    _text("CATEGORY_LEAD"),
    _text("BENE_IDENTIFIER", phi=True),
    _text("CONTACT_FIRST_NAME", phi=True),
    _text("CONTACT_LAST_NAME", phi=True),
    _text("CONTACT_PHONE_NUMBER", phi=True),
    _text("ALTERNATE_PHONE_NUMBER", phi=True),
    _text("PREFERRED_CALL_TIME", phi=True),
    _text("PREFERRED_LANGUAGE", phi=True),
    _text("COMPLAINT_SUMMARY", phi=True),
    _text("CMS_COMMENTS", phi=True),
    _yes_no("CONGRESSIONAL"),
    _text("CONGRESSIONAL_INFORMATION", phi=True),
)
_SWIFT: Final = (_yes_no("SWIFT"), _text("SWIFT_CONTROL_NUMBER"))
_AFTER_SWIFT_HEAD: Final = (
    _yes_no("AGENT_BROKER"),
    _text("AGENT_BROKER_INFORMATION", phi=True),
    _yes_no("CONTACT_PLAN_BEFORE_COMPLAINT_ENTERED"),
    _change("CONTRACT_CHANGE_REQUESTS"),
    _change("ISSUE_LEVEL_CHANGE_REQUESTS"),
)
_AFTER_LEAD: Final = (
    _text("CMS_PLAN_CASEWORK_NOTES", phi=True),
    _date("RESOLUTION_DATE"),
    _text("RESOLUTION_SUMMARY", phi=True),
    _yes_no("COMPLAINANT_SATISFIED"),
    _yes_no("HPI_RELATED"),
    _text("RESOLUTION_NOTIFICATION"),
    _text("CASE_WORKER"),
    _text("ATTACHMENTS", phi=True),
)

CURRENT_COLUMNS: Final = (
    *_BEFORE_SWIFT,
    *_SWIFT,
    *_AFTER_SWIFT_HEAD,
    _change(LEAD_COLUMN),
    *_AFTER_LEAD,
)
LEGACY_COLUMNS: Final = (
    *_BEFORE_SWIFT,
    *_AFTER_SWIFT_HEAD,
    _change(LEGACY_LEAD_COLUMN),
    *_AFTER_LEAD,
)
LAYOUT_COLUMNS: Final = {Layout.CURRENT: CURRENT_COLUMNS, Layout.LEGACY: LEGACY_COLUMNS}

# Every column the hub knows, by its current name; the legacy lead column is an alias.
COLUMNS: Final = {column.name: column for column in CURRENT_COLUMNS}
REQUIRED_COLUMNS: Final = tuple(c.name for c in CURRENT_COLUMNS if c.is_required)
PHI_COLUMNS: Final = frozenset(c.name for c in CURRENT_COLUMNS if c.has_phi)
DATE_COLUMNS: Final = tuple(c.name for c in CURRENT_COLUMNS if c.kind is Kind.DATE)

_FOLD_RUNS: Final = re.compile(r"[\s_-]+")


def fold(header: str) -> str:
    """Header folding: trim, lower-case, runs of spaces, tabs, hyphens, underscores -> `_`."""
    return _FOLD_RUNS.sub("_", header.strip().lower())


ALIASES: Final = {fold(LEGACY_LEAD_COLUMN): LEAD_COLUMN}
FOLDED: Final = {fold(name): name for name in COLUMNS} | ALIASES


def canonical_name(header: str) -> str | None:
    """The current-layout name a header stands for, or None for an unknown column."""
    return FOLDED.get(fold(header))


def detect_layout(headers: list[str]) -> Layout:
    """Legacy when neither SWIFT column is present and CMS_ISSUE_CHANGE_REQUESTS is."""
    folded = {fold(header) for header in headers}
    has_swift = any(fold(name) in folded for name in SWIFT_COLUMNS)
    if not has_swift and fold(LEGACY_LEAD_COLUMN) in folded:
        return Layout.LEGACY
    return Layout.CURRENT


def is_contract_number(value: str) -> bool:
    return CONTRACT_PATTERN.fullmatch(value) is not None
