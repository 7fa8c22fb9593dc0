"""The rule that places an imported preset's slots (operator/preset_mapping.py), case by case."""

from __future__ import annotations

import pytest

from boothgate.operator.preset_mapping import MappingInvalid, moved_fallback, parse_mapping, plan

TABS = ["gemini", "local", "openai"]


def test_each_tab_onto_the_events_slots_in_number_order() -> None:
    placed = plan(["gemini/2", "local/3", "gemini/1"], ["local/1", "gemini/6", "gemini/5"], {})
    assert placed == {"gemini/2": "gemini/6", "local/3": "local/1", "gemini/1": "gemini/5"}


def test_a_slot_already_in_the_event_stays_and_the_others_fill_around_it() -> None:
    assert plan(["gemini/2"], ["gemini/1", "gemini/2"], {}) == {"gemini/2": "gemini/2"}
    assert plan(["gemini/1", "gemini/3"], ["gemini/3", "gemini/7"], {}) == {
        "gemini/1": "gemini/7",
        "gemini/3": "gemini/3",
    }


def test_leftovers_keep_their_address_unless_it_is_taken() -> None:
    assert plan(["gemini/1", "gemini/2", "openai/4"], ["gemini/9"], {}) == {
        "gemini/1": "gemini/9", "gemini/2": "gemini/2", "openai/4": "openai/4"
    }  # fmt: skip
    with pytest.raises(MappingInvalid, match="Two slots of the file would be written to gemini/2"):
        plan(["gemini/1", "gemini/2"], ["local/1"], {"gemini/1": "gemini/2"})  # the left-over gemini/2 too
    assert plan(["gemini/1"], None, {}) == {"gemini/1": "gemini/1"}  # not into an event: where the file says


def test_an_explicit_mapping_wins_and_is_checked() -> None:
    mapping = parse_mapping(" gemini/1:gemini/12 , local/3:local/7", TABS)
    assert mapping == {"gemini/1": "gemini/12", "local/3": "local/7"}
    assert plan(["gemini/1", "gemini/2", "local/3"], ["gemini/12", "gemini/5"], mapping) == {
        "gemini/1": "gemini/12", "gemini/2": "gemini/5", "local/3": "local/7"
    }  # fmt: skip
    for bad, words in (("gemini/1:local/2", "keeps its tab"), ("gemini/4:gemini/5", "does not contain")):
        with pytest.raises(MappingInvalid, match=words):
            plan(["gemini/1"], [], parse_mapping(bad, TABS))
    for raw in ("gemini/1", "gemini/1:nowhere/2", "gemini/0:gemini/2", "gemini/1:gemini/2,gemini/1:gemini/3"):
        with pytest.raises(MappingInvalid):
            parse_mapping(raw, TABS)
    with pytest.raises(MappingInvalid, match="more than"):
        parse_mapping(",".join(f"gemini/1:gemini/{n % 20 + 1}" for n in range(201)), TABS)


def test_a_fallback_follows_its_slot_only_when_the_file_moves_it() -> None:
    placed = {"gemini/1": "gemini/5", "local/3": "local/1"}
    assert moved_fallback("local/3", placed) == "local/1"
    assert moved_fallback("local/9", placed) == "local/9"
    assert moved_fallback(None, placed) is None
