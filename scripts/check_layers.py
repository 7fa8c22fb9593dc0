"""Print the import graph of src/boothgate by package and fail on a circle or an upward import.

The floors (top first) are the layers of `../shared/design.md`'s map, as each package's docstring says:
a module may import its own package and any package on a lower floor, never one above, and no set of
modules may import each other in a circle. Run by `make lint`; `--graph` prints the package graph.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "boothgate"

# Top floor first. Packages on one line share a floor and may not import each other.
FLOORS: list[tuple[str, ...]] = [
    ("__main__",),
    ("cli",),
    ("web",),
    ("runtime",),
    ("api",),  # the client API's jobs and batches drive the spine, as a booth does
    ("booth", "ops"),
    ("operator",),
    ("run", "sharing"),
    ("records", "work"),
    ("providers",),
    ("storage",),
    ("imaging",),
    ("local",),
    ("redaction", "i18n"),
    ("link_secrets",),
    ("settings",),
    ("prices",),
    ("errors", "deadline", "__init__"),
]
LEVEL = {name: len(FLOORS) - i for i, floor in enumerate(FLOORS) for name in floor}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            # `from boothgate.x import y` may name a module y
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def main(argv: list[str]) -> int:
    modules = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py") if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {m for m in imports_of(path, name) if m in modules and m != name}
    problems: list[str] = []
    for name, targets in sorted(graph.items()):
        here = top(name)
        if here not in LEVEL:
            problems.append(f"{name}: package {here!r} has no floor in scripts/check_layers.py")
            continue
        for target in sorted(targets):
            there = top(target)
            if (
                there == here
                or graph.get(target) is None
                or (modules[target].name == "__init__.py" and target == PACKAGE)
            ):
                continue
            if there not in LEVEL:
                continue
            if LEVEL[there] >= LEVEL[here]:
                problems.append(f"upward import: {name} -> {target} ({here} may not import {there})")
    problems.extend(f"circle: {' -> '.join(c)}" for c in circles(graph))
    if "--graph" in argv:
        edges: dict[str, set[str]] = defaultdict(set)
        for name, targets in graph.items():
            for target in targets:
                if top(target) != top(name):
                    edges[top(name)].add(top(target))
        for floor in FLOORS:
            for pkg in floor:
                if pkg in edges:
                    print(f"{pkg:10} -> {', '.join(sorted(edges[pkg], key=lambda p: -LEVEL.get(p, 0)))}")
    for line in problems:
        print(line)
    print(f"{len(modules)} modules, {sum(map(len, graph.values()))} imports, {len(problems)} problems")
    return 1 if problems else 0


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as one loop to read."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
