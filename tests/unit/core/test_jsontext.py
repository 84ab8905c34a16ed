"""Compact JSON text: the same as json.dumps with compact separators and UTF-8 kept."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hub.core import jsontext

DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@given(DOCUMENTS)
def test_same_text_as_json_dumps(document: Any) -> None:
    assert jsontext.dumps(document) == json.dumps(
        document, ensure_ascii=False, separators=(",", ":")
    )


def test_utf8_and_control_characters() -> None:
    assert jsontext.dumps({"k": 'é漢😀 "\n\x00'}) == '{"k":"é漢😀 \\"\\n\\u0000"}'


def test_something_json_cannot_hold_is_refused_by_type() -> None:
    with pytest.raises(TypeError, match="Object of type date is not JSON serializable"):
        jsontext.dumps({"when": date(2025, 1, 2)})


@given(st.dictionaries(st.text(), st.text()))
def test_an_object_from_names_and_values_is_the_dict_as_json(document: dict[str, str]) -> None:
    text = jsontext.object_text(jsontext.keys(list(document)), list(document.values()))
    assert text == jsontext.dumps(document)


@given(st.dictionaries(st.text(), st.text()), st.dictionaries(st.text(), st.text(), min_size=1))
def test_extra_items_come_after_the_named_ones(
    document: dict[str, str], extra: dict[str, str]
) -> None:
    assume(extra.keys().isdisjoint(document))
    text = jsontext.object_text(jsontext.keys(list(document)), list(document.values()), extra)
    assert text == jsontext.dumps(document | extra)


def test_an_object_with_nothing_but_extra() -> None:
    assert jsontext.object_text((), (), {"_unknown": {"X": "1"}}) == '{"_unknown":{"X":"1"}}'
    assert jsontext.object_text((), ()) == "{}"
