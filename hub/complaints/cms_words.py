"""What CMS says when it rejects an upload, in two forms. CMS's own words may quote the file
(a summary, a name in it) or its own records, so they are PHI: sealed with the resolution
and shown only where PHI may be (the resolution's API view, audited). Events, logs, job
results and PHI-free fields carry their safe form instead: every word that is not known to
be safe (the vocabulary of error messages, column names, contract numbers, the upload's
complaint IDs, short numbers) is masked.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from uuid import UUID

from hub.core.crypto import Sealed, TenantCipher
from hub.ctm import layouts, modeled

SAID_FIELD = "resolutions.cms_said"
MASK = "[…]"
MAX_CHARS = 500
# Punctuation around a word, kept as written when the word is safe.
_EDGE = "\"'`()[]{}<>,;:.!?*"
# Words of error messages. No word that is also a common given name or surname (may, will,
# long, mark, grace…): a name alone must not pass.
_WORDS = """
    a an the and or nor of to in on for by with from at as into per via than then if but so
    is are was were be been being not no none must should shall can cannot could would does
    doesn't did didn't do don't has have had isn't aren't wasn't it its this that these those
    which what when where who whose there here only also any all each every one two more most
    less least other another same such own too very up out over under after before between
    file files upload uploads uploaded uploading download row rows column columns header
    headers field fields value values line lines record records cell cells part multipart
    form request response body format formatted layout template version name named names
    complaint complaints contract contracts plan plans key keys resolution resolutions date
    dates summary notes note casework caseworker satisfied complainant notification
    beneficiary id ids identifier identifiers number numbers code type status level
    cms hpms ctm api csv json utf utf-8 bom crlf
    invalid valid missing required optional unknown empty blank null duplicate duplicated
    too longer shorter exceeds exceed exceeded characters character chars bytes length
    maximum minimum max min limit most least allowed permitted accepted accept rejected
    reject refused refuse error errors warning warnings failed failure fail problem problems
    match matches matched matching mismatch expected got found find given use used using
    covered cover closed withdrawn resolved open already exists exist existing
    present absent contains contain containing includes include including
    whole entire partial only once twice again
    future past today later earlier older newer
    yes y n true false
    mm dd yyyy
    please check correct fix resubmit retry try
"""
_VOCABULARY = frozenset(_WORDS.split())
_COLUMNS = frozenset(modeled.UPLOAD_COLUMNS)


def _is_number(core: str) -> bool:
    """A count or a limit (400, 4000, 4,000), never an identifier, a phone number or a date."""
    digits = core.replace(",", "")
    return digits.isdigit() and len(digits) <= 4 and (core == digits or len(core) == 5)


def _is_safe_word(word: str) -> bool:
    return word.lower() in _VOCABULARY or word in _COLUMNS


def _is_safe(core: str, identifiers: Collection[str]) -> bool:
    if not core or core in identifiers or layouts.CONTRACT_PATTERN.fullmatch(core):
        return True
    if _is_safe_word(core):
        return True
    if core.lower().endswith("'s") and _is_safe_word(core[:-2]):
        return True  # CMS's
    # A compound (MM/DD/YYYY, non-empty): every part a safe word; never numbers, so no date,
    # phone or social security number passes in parts.
    parts = core.replace("/", "-").split("-")
    return len(parts) > 1 and all(_is_safe_word(p) for p in parts if p)


def safe_form(text: str, *, identifiers: Collection[str] = ()) -> str:
    """`text` with every word not known to be safe masked (a run of them as one `[…]`), cut
    to `MAX_CHARS`. `identifiers` are words known to be safe here (complaint IDs)."""
    tokens = text.split()
    cores = [token.strip(_EDGE) for token in tokens]
    safe = [_is_safe(core, identifiers) for core in cores]
    # A number passes only between safe words: beside another number or a masked word it
    # may be part of a phone number, an address or a date written with spaces.
    numbers = [not ok and _is_number(core) for ok, core in zip(safe, cores, strict=True)]
    for i, is_number in enumerate(numbers):
        beside = [j for j in (i - 1, i + 1) if 0 <= j < len(tokens)]
        if is_number and all(safe[j] and cores[j] for j in beside):
            safe[i] = True
    words: list[str] = []
    for token, ok in zip(tokens, safe, strict=True):
        if ok:
            words.append(token)
        elif not words or words[-1] != MASK:
            words.append(MASK)
    return " ".join(words)[:MAX_CHARS]


def seal_said(cipher: TenantCipher, said: list[str] | None, *, row: UUID) -> Sealed | None:
    """CMS's own words about a resolution, sealed with it (None when CMS said nothing)."""
    return None if not said else cipher.seal(json.dumps(said), field=SAID_FIELD, row=row)


def open_said(cipher: TenantCipher, sealed: Sealed | None, *, row: UUID) -> list[str] | None:
    if sealed is None:
        return None
    return [str(s) for s in json.loads(cipher.open(sealed, field=SAID_FIELD, row=row))]
