"""Secrets are compared in constant time (docs/security.md, design.md "Admit"): a static check of the source.

Two rules, read from the package's syntax trees (no server needed):

1. Nowhere in `src/boothgate` is a value named like a secret (password, PIN, token, digest, signature,
   hashed key, API key, the stored upload password, `get_secret_value()`) compared with `==`, `!=`, `in` or
   `not in`. A comparison with a literal (`key == "asyncid"`), `is None` and `len(...)` are no secret check;
   a comparison on an ORM column (`ApiKey.key_hash == hashed`) is a database lookup of a stored hash, not a
   comparison in Python.
2. Each function that decides whether a secret is right calls `hmac.compare_digest` (or
   `secrets.compare_digest`): the names of rule 1 do not reach `same(a, b)`, the check every password
   goes through.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "boothgate"
SECRET_WORDS = {"password", "passwd", "pin", "secret", "token", "digest", "signature", "hashed", "verified"}
SECRET_NAMES = {"_upload", "get_secret_value"}  # the stored upload password; a pydantic SecretStr's value

# (file under src/boothgate, function): every place that says whether a given secret is the right one
SECRET_CHECKS = [
    ("operator/credentials.py", "same"),  # upload password, admin user and password from the environment
    ("operator/credentials.py", "verify_hash"),  # the stored admin password's scrypt hash
    ("operator/credentials.py", "check_admin"),  # the verified-password fingerprint
    ("operator/api_keys.py", "authenticate"),  # a client's API key (current or previous hash)
    ("sharing/galleries.py", "check_pin"),  # a gallery's PIN
    ("sharing/galleries.py", "pin_cookie_opens"),  # the cookie the right PIN set
    ("providers/turbotext_inbox.py", "accepts"),  # the Turbotext webhook's secret path
]


def _secretish(identifier: str) -> bool:
    if identifier.isupper():  # a constant: a set of field names (PASSWORD_FIELDS), not a secret
        return False
    words = identifier.lower().strip("_").split("_")
    api_key = "api_key" in identifier.lower() and words[-1] != "id"  # api_key_id is a row's number
    stored_hash = identifier.endswith("_hash")  # key_hash, pin_hash (the builtin hash() is no secret)
    return identifier in SECRET_NAMES or api_key or stored_hash or any(word in SECRET_WORDS for word in words)


def _orm_column(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id[:1].isupper()


def _names(node: ast.expr) -> list[str]:
    found = []
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name):
            found.append(inner.id)
        elif isinstance(inner, ast.Attribute):
            found.append(inner.attr)
    return found


def _not_a_secret(node: ast.expr) -> bool:
    is_len = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len"
    return isinstance(node, ast.Constant) or is_len


def plain_secret_comparisons(source: str, name: str = "<source>") -> list[str]:
    """Every `==`/`!=`/`in`/`not in` in `source` with a secret-named value on one side (rule 1)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, sides, sides[1:], strict=False):
            if not isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
                continue
            if _not_a_secret(left) or _not_a_secret(right) or _orm_column(left) or _orm_column(right):
                continue
            secret = [n for n in _names(left) + _names(right) if _secretish(n)]
            if secret:
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)} (compares {', '.join(secret)})")
    return found


def _calls_compare_digest(function: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compare_digest"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("hmac", "secrets")
        for node in ast.walk(function)
    )


def test_no_secret_is_compared_with_an_ordinary_comparison() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += plain_secret_comparisons(path.read_text(), str(path.relative_to(SRC)))
    assert not found, "compare secrets with hmac.compare_digest:\n" + "\n".join(found)


def test_every_secret_check_uses_compare_digest() -> None:
    missing = []
    for file, function in SECRET_CHECKS:
        tree = ast.parse((SRC / file).read_text())
        defined = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function
        ]
        assert defined, f"{file} has no function {function}: update SECRET_CHECKS"
        if not all(_calls_compare_digest(node) for node in defined):
            missing.append(f"{file}::{function}")
    assert not missing, f"these secret checks do not call hmac.compare_digest: {missing}"


def test_the_check_sees_the_comparisons_it_is_for() -> None:
    """The rules' own control: the shapes a regression would take are found, the harmless ones are not."""
    caught = [
        "ok = password == settings.upload_password.get_secret_value()",
        "ok = candidate != self._upload",
        "ok = request.cookies.get(name) == pin_cookie_value(gallery)",
        "ok = given.hex() in {digest}",
        "ok = key_hash == row.key_hash",
        "ok = header_api_key == expected",
        "ok = fingerprint == self._verified",
    ]
    for line in caught:
        assert plain_secret_comparisons(line), line
    harmless = [
        "ok = self.name in PASSWORD_FIELDS",
        "ok = collector.password is not None",
        "ok = len(password) < 8",
        "ok = key == 'asyncid'",
        "q = select(ApiKey).where(ApiKey.key_hash == hashed)",
        "ok = job.api_key_id == caller.id",
        "ok = self._tokens < 1.0",
    ]
    for line in harmless:
        assert not plain_secret_comparisons(line), line
