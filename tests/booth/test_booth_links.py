"""Links that carry their password, and prompts filled from the booth (issue 13).

The whole path on a real socket: DSLR Remote Pro's multipart, the spine, the real google-genai SDK
pointed at the loopback Gemini fake, which records the text it received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothgate.web.app import create_app
from tests.conftest import Booth, booth_settings, make_jpeg
from tests.fakes.gemini import GeminiFake
from tests.fakes.server import serve

KEY = "links-test-gemini-key"
WRONG = "not-the-password-9f3a"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[GeminiFake, str]]:
    fake = GeminiFake(api_key=KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(fake_server: tuple[GeminiFake, str]) -> GeminiFake:
    fake_server[0].reset()
    return fake_server[0]


@pytest.fixture
def server(tmp_path: Path, fake_server: tuple[GeminiFake, str]) -> Iterator[Booth]:
    settings = booth_settings(
        tmp_path, deadline_seconds=10.0, gemini_api_key=KEY, gemini_base_url=fake_server[1], auth_max_failures=3
    )
    app = create_app(settings, {})
    with serve(app) as url:
        yield Booth(url, settings, app)


def everything_stored(booth: Booth) -> bytes:
    """Every byte under the data dir: database (and its WAL), photos, results, trash sidecars."""
    return b"".join(p.read_bytes() for p in sorted(booth.settings.data_dir.rglob("*")) if p.is_file())


async def api_jobs(booth: Booth) -> str:
    async with booth.api() as client:
        response = await client.get("/api/jobs")
    assert response.status_code == 200
    return response.text


async def test_password_in_the_link_without_a_password_field(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 1, prompt="a {style} portrait")
    number_and_query = f"1?password={server.upload_password}&style=noir"

    answer = await server.post("gemini", number_and_query, make_jpeg(seed=1), password="")  # no password field

    assert answer.status == 200, answer.body[:300]
    assert fake.last.text.count("a noir portrait") == 1
    secret = server.upload_password.encode()
    assert secret not in everything_stored(server)
    jobs = await api_jobs(server)
    assert server.upload_password not in jobs
    [job] = json.loads(jobs)
    assert job["prompt"] == "a noir portrait"
    assert job["meta"]["query"] == {"style": "noir"}, "the rest of the link's query is kept, the password not"


async def test_key_parameter_works_too_and_a_form_password_still_does(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 2, prompt="x")
    by_key = await server.post("gemini", f"2?key={server.upload_password}", make_jpeg(seed=2), password="")
    by_field = await server.post("gemini", 2, make_jpeg(seed=3))
    assert (by_key.status, by_field.status) == (200, 200)


async def test_wrong_password_in_the_link_is_refused_counted_and_kept_nowhere(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 3, prompt="x")
    statuses = []
    for seed in range(4):
        answer = await server.post("gemini", f"3?password={WRONG}", make_jpeg(seed=10 + seed), password="")
        statuses.append(answer.status)
    # auth_max_failures=3: three wrong passwords from the link, then the address is locked out
    assert statuses == [401, 401, 401, 429]
    assert fake.received == []
    stored = everything_stored(server)
    assert WRONG.encode() not in stored
    sidecars = [p for p in server.trash_files() if p.suffix == ".json"]
    assert len(sidecars) == 4
    assert all(WRONG not in p.read_text() for p in sidecars)
    assert WRONG not in await api_jobs(server)


async def test_missing_password_names_both_ways(server: Booth) -> None:
    await server.configure("gemini", 4, prompt="x")
    answer = await server.post("gemini", 4, make_jpeg(seed=4), password="")
    assert answer.status == 401
    assert "?password=" in str(answer.json()["message"])


async def test_form_fields_fill_placeholders_and_the_query_wins(server: Booth, fake: GeminiFake) -> None:
    await server.configure(
        "gemini",
        5,
        prompt="{Style|watercolour} portrait for {survey1_type_id}, code {qr1}, mood {mood}",
    )
    fields = {"survey1_type_id": "  Anna\n\x1b[31m ", "{qr1}": "QR-77", "style": "pop art"}
    answer = await server.post("gemini", "5?style=noir", make_jpeg(seed=5), fields=fields)

    assert answer.status == 200, answer.body[:300]
    assert "noir portrait for Anna [31m, code QR-77, mood" in fake.last.text
    [job] = json.loads(await api_jobs(server))
    assert job["prompt"] == "noir portrait for Anna [31m, code QR-77, mood"
    assert job["provider_notes"]["placeholders_missing"] == ["mood"]


async def test_defaults_apply_and_long_values_are_cut(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 6, prompt="a {style|watercolour} portrait, {note}")
    answer = await server.post("gemini", 6, make_jpeg(seed=6), fields={"note": "x" * 500})
    assert answer.status == 200
    assert "a watercolour portrait, " + "x" * 200 in fake.last.text
    assert "x" * 201 not in fake.last.text


async def test_same_photo_with_another_style_is_not_served_the_stored_result(server: Booth, fake: GeminiFake) -> None:
    await server.configure("gemini", 7, prompt="a {style} portrait")
    photo = make_jpeg(seed=7)
    first = await server.post("gemini", "7?style=noir", photo)
    again = await server.post("gemini", "7?style=noir", photo)
    other = await server.post("gemini", "7?style=pop", photo)
    assert (first.status, again.status, other.status) == (200, 200, 200)
    assert again.headers.get("x-reused-from") == first.headers["x-job-id"]
    assert "x-reused-from" not in other.headers
    assert [r.text.count("a pop portrait") for r in fake.received] == [0, 1]


async def test_try_it_fields_fill_placeholders_and_the_card_lists_them(server: Booth, fake: GeminiFake) -> None:
    slot = await server.configure("gemini", 8, prompt="a {style|watercolour} portrait of {name}")
    assert slot["placeholders"] == ["style", "name"]
    async with server.api() as client:
        response = await client.post(
            "/api/slots/gemini/8/try",
            files={"file": ("p.jpg", make_jpeg(seed=8), "image/jpeg")},
            data={"style": "noir", "name": "Ada"},
        )
    assert response.json()["status"] == 200, response.text
    assert response.json()["job"]["prompt"] == "a noir portrait of Ada"
    assert "a noir portrait of Ada" in fake.last.text
