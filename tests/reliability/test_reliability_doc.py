"""docs/reliability.md stays true: its tables are the test corpus and the fault plans the tests assert, and
every figure in its prose is a number a named test uses (tests/reliability_doc.py: TIES)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from tests.reliability_doc import (
    DOC,
    NOT_FIGURES,
    SUMMARY_DESCRIBED,
    TIES,
    Tie,
    numbers_in,
    render,
    untied_numbers,
)

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"


def test_reliability_doc_tables_match_the_tests() -> None:
    text = DOC.read_text()
    assert "<!-- summary:start -->" in text and "<!-- corpus:start -->" in text and "<!-- faults:start -->" in text
    assert render(text) == text, "docs/reliability.md is stale: run `python -m tests.reliability_doc`"
    assert "<!-- provider_faults:start -->" in text


def _bare(node: ast.AST) -> str:
    """The node as ast.unparse writes it, without spaces (`BOOTHS = 50` and the keyword `BOOTHS=50` alike)."""
    return "".join(ast.unparse(node).split())


@cache
def _written(test: str) -> set[str]:
    """Every expression, keyword and statement of the test (a function, or a module's top level; a path
    under src/ for a constant of the package itself), as `_bare` writes them."""
    file, _, function = test.partition("::")
    tree = ast.parse(((SRC if file.startswith("boothgate/") else TESTS) / file).read_text())
    if function:
        scopes: list[ast.AST] = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == function
        ]
        assert scopes, f"{test}: no such test function"
    else:  # a module's constants (a test module's top level; anywhere in a module of the package)
        scopes = [tree] if file.startswith("boothgate/") else [n for n in tree.body if isinstance(n, ast.Assign)]
    nodes = [node for scope in scopes for node in ast.walk(scope)]
    return {_bare(n) for n in nodes if isinstance(n, ast.expr | ast.keyword | ast.stmt)}


def _normal(code: str) -> tuple[str, set[float]]:
    """The code fragment as `_bare` writes it (an expression, a keyword argument or a statement) and its
    number literals."""
    tree: ast.AST
    try:
        tree = ast.parse(code, mode="eval").body
    except SyntaxError:
        try:
            tree = ast.parse(f"f({code})", mode="eval").body.keywords[0]  # type: ignore[attr-defined]
        except SyntaxError:
            tree = ast.parse(code).body[0]
    literals = {
        float(n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, int | float) and not isinstance(n.value, bool)
    }
    return _bare(tree), literals


def _check(tie: Tie, text: str) -> list[str]:
    problems = []
    if tie.phrase not in text:
        problems.append(f"not in the page: {tie.phrase!r}")
    written = _written(tie.test)
    literals: set[float] = set()
    for code in tie.code:
        normal, found = _normal(code)
        literals |= found
        if normal not in written:
            problems.append(f"{tie.test} does not use `{code}` (the page says {tie.phrase!r})")
    scaled = {value / factor for value in literals for factor in [1.0, *tie.scale.values()]}
    missing = [n for n in numbers_in(tie.phrase) if not any(abs(n - v) < 1e-9 for v in scaled)]
    if missing and not tie.made:
        problems.append(f"{tie.phrase!r}: {missing} is no number of {tie.test} `{'`, `'.join(tie.code)}`")
    return problems


def test_every_figure_in_the_prose_is_a_number_its_test_uses() -> None:
    text = DOC.read_text()
    problems = [problem for tie in TIES for problem in _check(tie, text)]
    assert not problems, "\n".join(problems)


def test_no_figure_in_the_prose_is_left_untied() -> None:
    text = DOC.read_text()
    # the summary's rows written in words are typed in tests/reliability_doc.py: their figures count too
    left = untied_numbers(text, TIES, NOT_FIGURES) + untied_numbers("\n".join(SUMMARY_DESCRIBED), TIES, NOT_FIGURES)
    assert not left, "tie these figures to their tests (tests/reliability_doc.py: TIES):\n" + "\n".join(left)


def test_the_figure_check_catches_a_figure_that_drifts() -> None:
    """The check's own control: a page whose figure differs from the test's, and a tie to code the test does
    not have, are both reported."""
    tie = TIES[0]
    number = numbers_in(tie.phrase)[0]
    drifted = tie.phrase.replace(f"{number:g}", f"{number + 1:g}", 1)
    assert _check(Tie(drifted, tie.test, *tie.code, scale=tie.scale), drifted), "a drifted number is caught"
    assert _check(Tie(tie.phrase, tie.test, "no_such_name * 7"), DOC.read_text()), "absent code is caught"


def test_the_measured_paragraph_is_the_commands_own_output() -> None:
    """The measured figures are written by `python -m tests.hardening_figures` (its `paragraph`): the block is
    that wording, with that command's own constants (booths, deadline, jobs, stranger's megabytes)."""
    from tests import hardening_figures as command

    figures = command.figures_in(DOC.read_text())
    assert figures is not None, "the block is not the command's paragraph: run `python -m tests.hardening_figures`"
    assert (figures["booths"], figures["deadline"], figures["jobs"], figures["stranger_mb"]) == (
        str(command.BOOTHS),
        f"{command.DEADLINE:g}",
        str(2 * command.BOOTHS),
        str(command.STRANGER_MB),
    )


def test_every_test_the_page_names_exists() -> None:
    """`test_x.py::test_y` (or `test_y…`, a name's start) on the page is a test function in that file."""
    import re

    missing = []
    for file, name, cut in re.findall(r"(test_\w+\.py)::(test_\w+)(…?)", DOC.read_text()):
        paths = list(TESTS.rglob(file))
        source = paths[0].read_text() if len(paths) == 1 else ""
        pattern = "def " + re.escape(name) + ("" if cut else r"\(")
        if not re.search(pattern, source):
            missing.append(f"{file}::{name}{cut}")
    assert not missing, f"the page names tests that do not exist: {missing}"
