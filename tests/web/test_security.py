"""Security: nobody in without the password, no cross-site mutation, strict headers, unguessable and
expiring media links, no secret in any answer or log line, no path outside the data dir.

The admin checks enumerate the app's routes, so a route added later (the UI's pages, the settings API)
is held to the same rules without this file changing.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest
from starlette.routing import Mount

from boothgate import errors
from boothgate.deadline import Deadline
from boothgate.providers.base import PreparedImage, ProviderRequest, ProviderResult
from tests.conftest import ADMIN, Booth, KeyedProvider, ScriptedProvider, make_jpeg

PUBLIC = {
    "/health",
    "/booth/{provider}/{number}",
    "/booth/{provider}/{number}/",
    "/media/{name}",
    "/hooks/turbotext/{secret}",
    "/api/v1/openapi.json",
}
CLIENT_API = "/api/v1/"  # the client API: its own keys (X-API-Key), not the admin password
# The guest's pages: public by design, each behind an unguessable token (tests/sharing/test_sharing.py).
GUEST = ("/p/{token}", "/g/{token}")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
KEYS = {
    "gemini_api_key": "AIzaSy-gemini-secret-0123456789",
    "turbotext_api_key": "tt-secret-key-abcdef0123456789",
    "deepseek_api_key": "sk-deepseek-secret-0123456789",
}


def _routes(booth: Booth) -> list[tuple[str, str]]:
    """(method, path template) of every admin route: everything but the public booth/media/hook links
    and static files. Routers included into the app are walked through (FastAPI ≥ 0.130 wraps them)."""
    found = []
    for path, methods in _walk(booth.app.routes):
        if path not in PUBLIC and not path.startswith(CLIENT_API) and not path.startswith(GUEST):
            found.extend((method, path) for method in sorted(methods - {"HEAD"}))
    assert found, "the app must have admin routes"
    return found


def _walk(routes: list[Any]) -> list[tuple[str, set[str]]]:
    out: list[tuple[str, set[str]]] = []
    for route in routes:
        if isinstance(route, Mount):
            continue  # static files: public by design
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            out.extend((c.path, set(c.methods or ())) for c in contexts())
        elif getattr(route, "methods", None):
            out.append((route.path, set(route.methods)))
    return out


def _concrete(path: str, job_id: str = "0" * 32) -> str:
    values = {"provider": "gemini", "number": "1", "job_id": job_id}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "x"), path)


# ---------------------------------------------------------------- Basic Auth
async def test_every_admin_route_needs_the_admin_password(booth_factory: Any) -> None:
    booth: Booth = booth_factory()
    async with httpx.AsyncClient(base_url=booth.url) as client:
        for method, path in _routes(booth):
            for auth in (None, ("admin", "wrong"), ("intruder", ADMIN[1])):
                booth.services.admin_throttle.succeeded("127.0.0.1")  # guessing slows down: not tested here
                response = await client.request(method, _concrete(path), auth=auth, json={})
                assert response.status_code == 401, f"{method} {path} with {auth and auth[0]}: {response.status_code}"
                assert response.headers["www-authenticate"].startswith("Basic")


async def test_every_client_api_route_needs_a_key(booth: Booth) -> None:
    routes = [
        (method, path)
        for path, methods in _walk(booth.app.routes)
        if path.startswith(CLIENT_API) and path not in PUBLIC
        for method in sorted(methods - {"HEAD"})
    ]
    assert len(routes) >= 10
    async with httpx.AsyncClient(base_url=booth.url) as client:
        for method, path in routes:
            for headers in ({}, {"X-API-Key": "bg_" + "0" * 43}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
                response = await client.request(method, _concrete(path), headers=headers)
                assert response.status_code == 401, f"{method} {path} {headers}: {response.status_code}"
                assert response.json()["error"] == "unauthorized"


async def test_admin_password_guessing_is_throttled_then_locked_out(booth_factory: Any) -> None:
    booth: Booth = booth_factory(auth_max_failures=4, auth_lockout_seconds=60)
    async with httpx.AsyncClient(base_url=booth.url) as client:
        for _ in range(6):  # a browser's first request has no credentials: that is not a guess
            assert (await client.get("/api/stats")).status_code == 401
        assert (await client.get("/api/stats", auth=ADMIN)).status_code == 200
        statuses = [(await client.get("/api/stats", auth=("admin", f"guess{i}"))).status_code for i in range(4)]
        assert statuses == [401] * 4
        locked = await client.get("/api/stats", auth=ADMIN)
    assert locked.status_code == 429, "after the lockout even the right password waits"
    assert int(locked.headers["retry-after"]) > 0


# ---------------------------------------------------------------- same-origin / CSRF
CROSS_SITE = {
    "foreign Origin": {"Origin": "https://evil.example"},
    "opaque Origin": {"Origin": "null"},
    "foreign Referer": {"Referer": "https://evil.example/page"},
    "Sec-Fetch-Site cross-site": {"Sec-Fetch-Site": "cross-site"},
    "Sec-Fetch-Site same-site": {"Sec-Fetch-Site": "same-site"},
    "Origin on another port": {"Origin": "http://127.0.0.1:1"},
}


async def test_every_admin_mutation_refuses_cross_site_requests(booth: Booth) -> None:
    mutations = [(m, p) for m, p in _routes(booth) if m in UNSAFE]
    assert mutations, "there are admin mutations to protect"
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        for method, path in mutations:
            for what, headers in CROSS_SITE.items():
                response = await client.request(method, _concrete(path), json={"enabled": True}, headers=headers)
                assert response.status_code == 403, f"{method} {path} with {what}: {response.status_code}"
        slot = (await client.get("/api/slots/gemini/1")).json()
        assert slot["enabled"] is False, "a refused cross-site request changed nothing"
        host = booth.url.removeprefix("http://")
        same = await client.put(
            "/api/slots/gemini/1",
            json={"enabled": True},
            headers={"Origin": booth.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 200, f"our own page (Origin {host}) may change a slot"


# ---------------------------------------------------------------- headers
def _csp(value: str) -> dict[str, list[str]]:
    directives = {}
    for part in value.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def _assert_strict_headers(response: httpx.Response, what: str) -> None:
    headers = response.headers
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") == "no-referrer", what
    assert headers.get("x-frame-options") == "DENY", what
    csp = _csp(headers["content-security-policy"])
    scripts = csp.get("script-src", csp["default-src"])
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(scripts), what
    assert csp["frame-ancestors"] == ["'none'"], what
    assert csp["default-src"] == ["'self'"] and csp["base-uri"] == ["'none'"], what


async def test_security_headers_on_every_kind_of_answer(booth: Booth) -> None:
    await booth.configure("gemini", 1, prompt="x")
    ok = await booth.post("gemini", 1, make_jpeg(64, 48, seed=1))
    job_id = ok.headers["x-job-id"]
    link = booth.services.links.publish_sync(PreparedImage(b"\xff\xd8\xff", "image/jpeg", 1, 1), Deadline.after(5))
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        answers = {
            f"GET {path}": await client.get(_concrete(path, job_id))
            for method, path in _routes(booth)
            if method == "GET"
        }
        answers["health"] = await client.get("/health")
        answers["401"] = await client.get("/api/stats", auth=("admin", "nope"))
        answers["404"] = await client.get("/no/such/page")
        answers["405"] = await client.get("/booth/gemini/1")
        answers["media link"] = await client.get(link.removeprefix(booth.url))
        answers["booth error"] = await client.post("/booth/gemini/1", content=b"x")
    for what, response in answers.items():
        _assert_strict_headers(response, what)
    booth_image = await booth.post("gemini", 1, make_jpeg(64, 48, seed=2))
    booth_headers = httpx.Headers(booth_image.headers)
    assert booth_headers["x-content-type-options"] == "nosniff"
    assert booth_headers["referrer-policy"] == "no-referrer"
    for what, response in answers.items():
        if response.headers.get("content-type", "").startswith("text/html"):
            _assert_no_inline_script(response.text, what)


def _assert_no_inline_script(html: str, what: str) -> None:
    """Pages load scripts from files only: no inline <script> body, no on* handler attributes."""
    for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S | re.I):
        attributes, body = match.groups()
        if re.search(r'type="application/(ld\+)?json"', attributes):
            continue  # a data block: never executed, and CSP's script-src would not run it anyway
        assert "src=" in attributes and not body.strip(), f"{what}: inline script"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html, re.I), f"{what}: inline event handler"
    assert "javascript:" not in html.lower(), f"{what}: javascript: URL"


# ---------------------------------------------------------------- media links
async def test_media_links_are_unguessable_exact_and_expiring(booth: Booth) -> None:
    links = booth.services.links
    image = PreparedImage(b"\xff\xd8\xff\xe0photo", "image/jpeg", 1, 1)
    urls = {links.publish_sync(image, Deadline.after(10)) for _ in range(200)}
    assert len(urls) == 200, "every link is new"
    tokens = [u.rsplit("/", 1)[1].split(".")[0] for u in urls]
    assert min(len(t) for t in tokens) >= 43, "at least 256 bits of randomness (token_urlsafe(32))"
    url = next(iter(urls)).removeprefix(booth.url)
    token = url.rsplit("/", 1)[1].split(".")[0]
    async with httpx.AsyncClient(base_url=booth.url) as client:
        served = await client.get(url)
        assert served.status_code == 200 and served.content == image.data
        assert served.headers["cache-control"] == "no-store"
        assert served.headers["referrer-policy"] == "no-referrer"
        assert "noindex" in served.headers["x-robots-tag"]
        wrong_names = (
            f"/media/{token}.png",
            f"/media/{token}",
            f"/media/{token[:-1]}.jpg",
            "/media/..%2F..%2Fboothgate.db",
            "/media/%2E%2E%2Fboothgate.db",
            f"/media/{token}.jpg/../x",
        )
        for wrong in wrong_names:
            assert (await client.get(wrong)).status_code == 404, wrong
        short = links.publish_sync(image, Deadline.after(0.3)).removeprefix(booth.url)
        await asyncio.sleep(0.4)
        assert (await client.get(short)).status_code == 404, "links die with the job's deadline"


# ---------------------------------------------------------------- secrets
class LeakyProvider(ScriptedProvider):
    """A provider whose SDK puts the key into errors: the booth answer and logs must not carry it."""

    async def run(self, request: ProviderRequest) -> ProviderResult:
        key = KEYS["gemini_api_key"]
        mode = getattr(request.options, "mode", "")
        if mode == "fail":
            url = f"https://generativelanguage.example/v1/models:generate?key={key}"
            response = httpx.Response(403, request=httpx.Request("POST", url))
            message = f"Client error '403 Forbidden' for url '{url}'"
            raise httpx.HTTPStatusError(message, request=response.request, response=response)
        if mode == "crash":
            raise RuntimeError(f"SDK blew up calling ?key={key} with password {self._upload_password()}")
        if mode == "refuse":
            raise errors.ProviderFailed("refused")
        return await super().run(request)

    def _upload_password(self) -> str:
        secret = self.settings.upload_password
        return secret.get_secret_value() if secret is not None else ""


def _leaky_booth(booth_factory: Any) -> Booth:
    booth: Booth = booth_factory({"gemini": LeakyProvider, "turbotext": KeyedProvider}, **KEYS)
    return booth


async def _exercise(booth: Booth) -> list[tuple[str, httpx.Response | Any]]:
    """Successes, failures, crashes, refusals and wrong passwords, through the real server."""
    for number, mode in ((1, "invert"), (2, "fail"), (3, "crash"), (4, "refuse")):
        await booth.configure("gemini", number, prompt="x", options={"mode": mode})
    answers: list[tuple[str, Any]] = []
    for number in (1, 2, 3, 4):
        answers.append((f"booth gemini/{number}", await booth.post("gemini", number, make_jpeg(64, 48, seed=number))))
    answers.append(("wrong password", await booth.post("gemini", 1, make_jpeg(64, 48, seed=9), password="guess")))
    answers.append(("bad input", await booth.post("gemini", 1, b"not an image")))
    return answers


async def test_no_answer_ever_contains_a_key_or_the_admin_password(booth_factory: Any) -> None:
    booth = _leaky_booth(booth_factory)
    answers = await _exercise(booth)
    assert [a.status for _, a in answers] == [200, 502, 500, 502, 401, 415]
    job_id = answers[1][1].json()["job_id"]
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        for method, path in _routes(booth):
            if method == "GET":
                answers.append((f"GET {path}", await client.get(_concrete(path, job_id))))
        answers.append(("health", await client.get("/health")))
        answers.append(("jobs", await client.get("/api/jobs?limit=500")))
    forbidden = [*KEYS.values(), ADMIN[1]]
    for what, answer in answers:
        text = (answer.text if isinstance(answer, httpx.Response) else answer.body.decode("latin-1")) + str(
            dict(answer.headers)
        )
        for secret in forbidden:
            assert secret not in text, f"{what} reveals a secret"
        html = isinstance(answer, httpx.Response) and answer.headers.get("content-type", "").startswith("text/html")
        if booth.upload_password in text:
            assert what == "GET /api/stats" or html, f"{what} reveals the upload password"


async def test_logs_never_contain_the_upload_password_or_keys(
    booth_factory: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    booth = _leaky_booth(booth_factory)
    answers = await _exercise(booth)
    assert answers[2][1].status == 500, "the crash must have been logged with its traceback"
    crashed = answers[2][1].json()["job_id"]
    printed = ""
    until = time.monotonic() + 10
    while True:  # the server thread's log lines: wait for the crashed job's traceback, not for a fixed time
        captured = capfd.readouterr()
        printed += captured.out + captured.err
        logs = caplog.text + printed
        if (crashed in logs and "Traceback" in logs) or time.monotonic() > until:
            break
        await asyncio.sleep(0.05)
    assert crashed in logs and "Traceback" in logs, "the crash's log lines must have been captured"
    for secret in (*KEYS.values(), ADMIN[1], booth.upload_password):
        assert secret not in logs, "a secret reached the log"
    assert "***" in logs, "the leaked secrets were masked, not dropped with their lines"


async def test_a_rotated_upload_password_is_masked_too(booth_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    booth: Booth = booth_factory(upload_password=None)
    async with booth.api() as client:
        new = (await client.post("/api/upload-password/rotate")).json()["upload_password"]
    logging.getLogger("boothgate.test").warning("booth sent %s", new)
    assert new not in caplog.text and "booth sent ***" in caplog.text


# ---------------------------------------------------------------- paths
async def test_paths_from_the_database_cannot_leave_the_data_dir(booth: Booth) -> None:
    outside = booth.settings.data_dir.parent / "outside-secret.jpg"
    outside.write_bytes(b"\xff\xd8\xff TOP SECRET OUTSIDE")
    media = booth.services.media
    for bad in ("../outside-secret.jpg", str(outside), "photos/../../outside-secret.jpg"):
        with pytest.raises(ValueError):
            media.resolve(bad)
    link = booth.settings.data_dir / "photos" / "escape.jpg"
    link.symlink_to(outside)
    with pytest.raises(ValueError):
        media.resolve("photos/escape.jpg")

    await booth.configure("gemini", 1, prompt="x")
    answer = await booth.post("gemini", 1, make_jpeg(64, 48, seed=3))
    job = await booth.services.jobs.get(answer.headers["x-job-id"])
    for tampered in ("../outside-secret.jpg", "photos/escape.jpg", str(outside)):
        job.photo_path = job.result_path = tampered
        await booth.services.jobs.save(job)
        async with booth.api() as client:
            for kind in ("photo", "result", "photo/thumbnail"):
                response = await client.get(f"/api/jobs/{job.id}/{kind}")
                assert response.status_code in (400, 404), f"{tampered} {kind}: {response.status_code}"
                assert b"TOP SECRET" not in response.content


def test_throttle_memory_is_bounded() -> None:
    from boothgate.booth.throttle import MAX_TRACKED, Throttle

    throttle = Throttle(max_failures=3, lockout_seconds=60)
    started = time.monotonic()
    for i in range(MAX_TRACKED + 500):
        throttle.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")
    assert len(throttle._records) <= MAX_TRACKED + 1
    assert time.monotonic() - started < 30


async def test_a_key_entered_on_the_settings_page_never_comes_back_and_is_masked_in_logs(
    booth: Booth, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    key = "AIzaSy-entered-on-the-page-0123456789"
    async with booth.api() as client:
        forged = await client.put("/api/settings", json={"gemini_api_key": key}, headers=CROSS_SITE["foreign Origin"])
        assert forged.status_code == 403, "the settings API refuses cross-site writes"
        assert booth.services.settings.gemini_api_key is None, "and the forged key was not stored"
        saved = await client.put("/api/settings", json={"gemini_api_key": key}, headers={"Origin": booth.url})
        assert saved.status_code == 200
        pages = [await client.get(path) for path in ("/api/settings", "/settings", "/tabs/gemini", "/api/providers")]
    assert [p.status_code for p in pages] == [200] * 4
    assert "gemini_api_key" in pages[0].text, "the settings listing does describe the key (masked)"
    for response in [saved, *pages]:
        assert key not in response.text, f"{response.request.url.path} shows the key"
    logging.getLogger("boothgate.test").error("provider said: bad key %s", key)
    assert key not in caplog.text and "bad key ***" in caplog.text
