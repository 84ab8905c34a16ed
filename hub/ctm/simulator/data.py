"""Complaints the simulator serves: a pure function of (seed, contract, number, today).

Each contract receives a few complaints a day; each complaint is updated on a later day
(assigned, commented on, a change request, a resolution), so a download taken later finds
new and changed complaints. Names are clearly fake (`Testy McFakeface`), phones are in the
fictional 555-01xx range, and beneficiary identifiers start with `SIM`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from hub.ctm.csvstream import RecordWriter
from hub.ctm.layouts import LAYOUT_COLUMNS, Layout

CATEGORIES: dict[str, tuple[str, ...]] = {
    "Enrollment/Disenrollment": ("Enrollment Not Processed", "Disenrollment Not Processed"),
    "Pricing/Co-Insurance": ("Premium Billing", "Co-Pay Amount"),
    "Benefits/Access": ("Prior Authorization", "Provider Network", "Transportation"),
    "Pharmacy Access": ("Formulary", "Transition Fill", "Pharmacy Network"),
    "Marketing": ("Misleading Information", "Unsolicited Contact"),
    "Customer Service": ("Hold Times", "Incorrect Information"),
    "Claims": ("Claim Denied", "Claim Not Paid Timely"),
}
ISSUE_LEVELS = ("Standard", "Standard", "Standard", "Urgent", "Immediate Need")
LEADS = ("Plan", "Plan", "CMS")
FIRST_NAMES = ("Testy", "Sample", "Demo", "Fakey", "Placeholder", "Mock", "Dummy")
LAST_NAMES = ("McFakeface", "Example", "Notreal", "Testperson", "Sampleton", "Fictional")
LANGUAGES = ("English", "English", "Spanish", "Chinese", "Vietnamese")
CALL_TIMES = ("Morning", "Afternoon", "Evening", "")
SUMMARY_LINES = (
    'Beneficiary reports the pharmacy refused a refill, saying "not on formulary".',
    "Member states the plan did not process a disenrollment request, see notes.",
    "Caller says premium was billed twice, and wants a refund.",
    "Beneficiary waiting on prior authorization for an MRI; provider faxed twice.",
    "Reports agent promised $0 premium; plan charges $35.",
)


@dataclass(frozen=True)
class ContractPlan:
    """How busy a simulated contract is."""

    daily_min: int = 0
    daily_max: int = 3
    summary_chars: int | None = None  # pad summaries to this length (large-file tests)


@dataclass(frozen=True)
class Complaint:
    complaint_id: str
    contract_id: str
    received: date
    updated: date | None  # the day its casework changes (None: never)
    cells: dict[str, str] = field(repr=False)


def _pick(rng: random.Random, items: tuple[str, ...]) -> str:
    return items[rng.randrange(len(items))]


def _us(day: date | None) -> str:
    return day.strftime("%m/%d/%Y") if day else ""


def complaints_received(
    seed: int, contract: str, day: date, plan: ContractPlan
) -> Iterator[tuple[int, random.Random]]:
    # Not cryptography: a reproducible stream per (seed, contract, day).
    rng = random.Random(f"{seed}:{contract}:{day.isoformat()}")  # noqa: S311
    count = rng.randint(plan.daily_min, plan.daily_max)
    base = (day.toordinal() % 100_000) * 1000
    for index in range(min(count, 999)):
        yield base + index, random.Random(f"{seed}:{contract}:{day.isoformat()}:{index}")  # noqa: S311


def _phone(line: int, area: int) -> str:
    """A fictional number: 555-0100 to 555-0199 are reserved for fiction in every area code."""
    return f"({200 + area % 800}) 555-01{line:02d}"


def make_complaint(
    contract: str, number: int, received: date, rng: random.Random, today: date, plan: ContractPlan
) -> Complaint:
    category = _pick(rng, tuple(CATEGORIES))
    level = _pick(rng, ISSUE_LEVELS)
    first, last = _pick(rng, FIRST_NAMES), _pick(rng, LAST_NAMES)
    summary = "\r\n".join(rng.sample(SUMMARY_LINES, 2))
    if plan.summary_chars:
        summary = (summary + " ") * (plan.summary_chars // (len(summary) + 1) + 1)
        summary = summary[: plan.summary_chars]
    updated = received + timedelta(days=rng.randint(1, 8))
    is_updated = updated <= today
    resolved = is_updated and rng.random() < 0.5
    cells = {
        "COMPLAINT_ID": f"{contract[1:]}{number:08d}",
        "CONTRACT_ID": contract,
        "PLAN_ID": f"{rng.randint(1, 30):03d}",
        "ISSUE_LEVEL": level,
        "RECEIVED_DATE": _us(received),
        "ASSIGNMENT_DATE": _us(received + timedelta(days=rng.randint(0, 1))),
        "COMPLAINT_CATEGORY": category,
        "COMPLAINT_SUBCATEGORY": _pick(rng, CATEGORIES[category]),
        "COMPLAINT_TYPE": "Complaint",
        "CATEGORY_LEAD": _pick(rng, LEADS),
        "BENE_IDENTIFIER": f"SIM{rng.randrange(10**8):08d}",
        "CONTACT_FIRST_NAME": first,
        "CONTACT_LAST_NAME": last,
        "CONTACT_PHONE_NUMBER": _phone(rng.randrange(100), rng.randrange(10000)),
        "PREFERRED_CALL_TIME": _pick(rng, CALL_TIMES),
        "PREFERRED_LANGUAGE": _pick(rng, LANGUAGES),
        "COMPLAINT_SUMMARY": summary,
        "CONGRESSIONAL": "N",
        "SWIFT": "N",
        "AGENT_BROKER": "Y" if category == "Marketing" else "N",
        "CONTACT_PLAN_BEFORE_COMPLAINT_ENTERED": _pick(rng, ("Y", "N")),
        "CONTRACT_CHANGE_REQUESTS": "Blank",
        "ISSUE_LEVEL_CHANGE_REQUESTS": "Pending" if is_updated and level == "Urgent" else "",
        "CMS_LEAD_CHANGE_REQUESTS": "",
        "CMS_COMMENTS": "CMS caseworker follow-up requested." if is_updated else "",
        "RESOLUTION_DATE": _us(updated) if resolved else "",
        "RESOLUTION_SUMMARY": "Plan contacted the member and fixed the issue." if resolved else "",
        "COMPLAINANT_SATISFIED": "Y" if resolved else "",
        "HPI_RELATED": "N",
        "CASE_WORKER": "Sim Caseworker",
    }
    return Complaint(cells["COMPLAINT_ID"], contract, received, updated, cells)


def header(layout: Layout) -> list[str]:
    names = [column.name for column in LAYOUT_COLUMNS[layout]]
    # The memo writes this header with spaces; the parser must fold it.
    return ["SWIFT control number" if name == "SWIFT_CONTROL_NUMBER" else name for name in names]


def row(complaint: Complaint, layout: Layout) -> list[str]:
    cells = dict(complaint.cells)
    cells["CMS_ISSUE_CHANGE_REQUESTS"] = cells["CMS_LEAD_CHANGE_REQUESTS"]
    return [cells.get(column.name, "") for column in LAYOUT_COLUMNS[layout]]


def encode_file(
    complaints: Iterator[Complaint], layout: Layout, *, chunk_bytes: int = 32 * 1024
) -> Iterator[bytes]:
    """The download file in chunks of about `chunk_bytes`: header, then the complaints."""
    writer = RecordWriter()
    chunk = [writer.encode(header(layout))]
    size = len(chunk[0])
    for complaint in complaints:
        line = writer.encode(row(complaint, layout))
        chunk.append(line)
        size += len(line)
        if size >= chunk_bytes:
            yield b"".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield b"".join(chunk)
