"""The tables of docs/reliability.md, made from the test corpus and fault plans themselves.

`python -m tests.reliability_doc` rewrites the blocks between the `<!-- name:start -->` and
`<!-- name:end -->` markers; `tests/reliability/test_reliability_doc.py` fails when the document is stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.bad_inputs import CORPUS
from tests.reliability.test_faults import DEADLINE as BURST_DEADLINE
from tests.reliability.test_faults import FAULT_PLAN
from tests.reliability.test_provider_faults import DEADLINE, EXPECTED, FAULT_WORDS

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def corpus_table() -> str:
    rows = ["| bad input | status | answer |", "|---|---|---|"]
    for case in CORPUS:
        answer = case.code or ("the processed image" if case.status == 200 else "no route (framework 404)")
        rows.append(f"| {case.name} | {case.status} | {answer} |")
    return "\n".join(rows)


def faults_table() -> str:
    """The plan `tests/reliability/test_faults.py` asserts: the real Gemini module against its wire fake."""
    rows = ["| provider fault | how it is injected | status | answer |", "|---|---|---|---|"]
    for name, (_, how, status, code) in FAULT_PLAN.items():
        rows.append(f"| {name} | {how} | {status} | {code or 'the processed image'} |")
    rows.append("")
    rows.append(
        f"Each alone, then 50 booths at once over all of them ({BURST_DEADLINE:g} s deadline): every job's recorded "
        "time inside the deadline, the statistics equal to the answers, every failed original byte-identical in trash."
    )
    return "\n".join(rows)


def provider_faults_table() -> str:
    """The plan `tests/reliability/test_provider_faults.py` asserts, one column per real provider tab."""
    tabs = [tab for tab in EXPECTED if len(EXPECTED[tab]) > 1]
    rows = ["| fault on the wire | " + " | ".join(tabs) + " |", "|---|" + "---|" * len(tabs)]
    for fault, words in FAULT_WORDS.items():
        cells = []
        for tab in tabs:
            status, code = EXPECTED[tab][fault]
            cells.append(f"{status} `{code}`" if code else f"{status}")
        rows.append(f"| {fault}: {words} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(
        f"All at once per tab, {DEADLINE:g} s deadline: every job's recorded time inside the deadline, the statistics "
        "equal to the answers, every failed original byte-identical in trash. The offline tab (no wire) serves its "
        "clean photo in the same run."
    )
    return "\n".join(rows)


BLOCKS = {"corpus": corpus_table, "faults": faults_table, "provider_faults": provider_faults_table}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)  # type: ignore[misc]
    return text


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
