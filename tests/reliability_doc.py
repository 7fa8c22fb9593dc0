"""The tables of docs/reliability.md, made from the test corpus and fault plans themselves.

`python -m tests.reliability_doc` rewrites the blocks between the `<!-- name:start -->` and
`<!-- name:end -->` markers; `tests/reliability/test_reliability_doc.py` fails when the document is stale.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.bad_inputs import CORPUS
from tests.booth import test_admission_properties as properties
from tests.reliability.test_faults import BOOTHS, FAULT_PLAN
from tests.reliability.test_faults import DEADLINE as BURST_DEADLINE
from tests.reliability.test_provider_faults import DEADLINE, EXPECTED, FAULT_WORDS

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def summary_table() -> str:
    """The summary's figures from the tests' own plans: how many inputs, properties, faults and booths."""
    tests = [f for n, f in vars(properties).items() if n.startswith("test_") and getattr(f, "is_hypothesis_test", 0)]
    examples = properties.FAST.max_examples
    inputs = f"{len(tests) * examples:,}".replace(",", " ")  # 1 200, as the page writes thousands
    rows = [
        "| area | tried | test | every booth answered in time | photos lost |",
        "|---|---|---|---|---|",
        f"| bad input, hand-made | {len(CORPUS)} raw HTTP requests (table below) on one server, plus the `../` + NUL "
        "file name again | `test_bad_input.py::test_corpus` | yes, each with its status from `design.md`; nothing "
        "written outside the data dir; server still serving after each | 0 |",
        f"| bad input, generated | {len(tests)} Hypothesis properties × {examples} examples = "
        f"{inputs} inputs per run: random forms in random chunkings, arbitrary bytes, mangled forms, "
        "limit shapes, arbitrary image bytes, damaged JPEG/PNG/WEBP, declared dimensions up to 2³¹−1, arbitrary "
        "EXIF blocks | `test_admission_properties.py` | never an exception other than a booth error; never more "
        "than the cap on disk; never a pixel decoded during admission | 0 |",
        *SUMMARY_DESCRIBED[:2],
        f"| provider faults | {len(FAULT_PLAN)} kinds (table below), one request each, then {BOOTHS} booths at once "
        f"spread over all of them, {BURST_DEADLINE:g} s deadline | `test_faults.py` | yes: all {BOOTHS} within "
        "deadline + 1 s; statistics equal the answers; every failed original byte-identical in trash with its "
        "sidecar | 0 |",
        *SUMMARY_DESCRIBED[2:],
    ]
    return "\n".join(rows)


# Rows whose figures are what their tests do, in words (no count to take from a plan).
SUMMARY_DESCRIBED = [
    "| slow and vanishing clients | body at 1 byte/s; body that stops half-way; request head at 1 byte per 0.2 s; a "
    "silent connection; a booth hanging up mid-upload | `test_bad_input.py` | 400 `upload_too_slow` by the deadline, "
    "400 `upload_stalled` after the idle timeout, connection closed after the head timeout, 400 `client_disconnected`; "
    "another booth served meanwhile in each case | 0 (the part that arrived is kept in trash) |",
    "| wrong passwords | repeated booth and admin guesses | `test_bad_input.py`, `test_security.py` | 401 with growing "
    "delays, then 429 even for the right password | — |",
    "| crashes | SIGKILL of a real server process with 3 jobs at the provider, 1 upload half received, plus a photo "
    "whose job row was never written | `test_crash.py` | (killed process) on restart: 3 jobs `failed`/`interrupted`, "
    "all 3 originals byte-identical in trash with sidecars, the half upload and the unrecorded photo in trash, "
    "`PRAGMA integrity_check` ok, no job left running, every stored path exists, statistics add up, the next photo "
    "processed | 0 |",
    "| full disk | no space for the result; no space for the result nor the sidecar; no space for the incoming upload "
    "| `test_disk_full.py` | 507 `storage_failed` (or the guest's own photo with `on_failure = original`); served "
    "again once space is back | 0 |",
]


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


BLOCKS = {
    "summary": summary_table,
    "corpus": corpus_table,
    "faults": faults_table,
    "provider_faults": provider_faults_table,
}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(\n<!-- {name}:end -->)", re.S)
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)  # type: ignore[misc]
    return text


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
