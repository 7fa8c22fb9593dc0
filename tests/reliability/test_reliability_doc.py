"""docs/reliability.md stays true: its tables are the test corpus and the fault plans the tests assert."""

from __future__ import annotations

from tests.reliability_doc import DOC, render


def test_reliability_doc_tables_match_the_tests() -> None:
    text = DOC.read_text()
    assert "<!-- summary:start -->" in text and "<!-- corpus:start -->" in text and "<!-- faults:start -->" in text
    assert render(text) == text, "docs/reliability.md is stale: run `python -m tests.reliability_doc`"
    assert "<!-- provider_faults:start -->" in text
