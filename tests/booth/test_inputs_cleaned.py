"""Inputs are cleaned where they enter (issue 14, part 4): log fields escaped, unknown provider names
not stored, every numeric setting within a sane range, media links revoked once the booth is answered."""

from __future__ import annotations

import json
import logging
import time
import typing
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from boothgate.operator import settings_view
from boothgate.providers.deepseek import DeepSeekProvider
from boothgate.providers.gemini import GeminiProvider
from boothgate.providers.registry import TABS, builtin_provider_class
from boothgate.providers.turbotext import TurbotextProvider
from boothgate.settings import RUNTIME_EDITABLE, Settings, get_settings
from tests.bad_inputs import MULTIPART, booth_form, exchange
from tests.conftest import ADMIN, Booth, make_jpeg
from tests.providers.test_turbotext_booth import PHOTO, Start, slot, start  # noqa: F401

FORGED = "job=forged0000 slot=gemini:1 status=succeeded http=200"


# ---------------------------------------------------------------- log injection
async def test_a_newline_in_the_upload_url_forges_no_log_line(booth: Booth, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    await booth.configure("gemini", 1, prompt="x")
    port = int(booth.url.rsplit(":", 1)[1])
    path = "/booth/gemini%0a" + FORGED.replace(" ", "%20") + "%0d%0a/1"
    answer = await exchange(port, path, booth_form(make_jpeg(64, 48, seed=1)), MULTIPART)
    body = json.loads(answer.body)
    assert (answer.status, body["error"]) == (404, "slot_not_found")
    assert "\n" not in body["message"] and "\r" not in body["message"]
    number = await exchange(port, "/booth/gemini/1%0a" + FORGED.replace(" ", "%20"), booth_form(b"x"), MULTIPART)
    assert number.status == 404
    logging.getLogger("boothgate.test").warning("field %s", "value\n" + FORGED)

    lines = caplog.text.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("job=forged")], "a forged line reached the log"
    assert any("\\n" + FORGED in line for line in lines), "the field is kept, escaped"
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        job = (await client.get(f"/api/jobs/{body['job_id']}")).json()
    assert job["provider"] == "unknown", "a name that is not a tab is not stored"
    sidecar = json.loads(next(p for p in booth.trash_files() if p.name == f"{body['job_id']}.json").read_text())
    assert "forged" not in sidecar["slot"]


# ---------------------------------------------------------------- setting ranges
def _numeric(annotation: Any) -> bool:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return any(a in (int, float) for a in args) and bool not in args


def _bounds(model: type[BaseModel], name: str) -> tuple[bool, bool]:
    metadata = model.model_fields[name].metadata
    low = any(getattr(m, attr, None) is not None for m in metadata for attr in ("ge", "gt"))
    high = any(getattr(m, attr, None) is not None for m in metadata for attr in ("le", "lt"))
    return low, high


# Every tab whose provider module exists (new providers are checked as soon as they land).
OPTION_MODELS = sorted(
    {cls.Options for name in TABS if (cls := builtin_provider_class(name)) is not None}
    | {GeminiProvider.Options, TurbotextProvider.Options, DeepSeekProvider.Options},
    key=lambda model: model.__name__,
)


@pytest.mark.parametrize("model", [Settings, *OPTION_MODELS], ids=lambda m: m.__name__)
def test_every_numeric_setting_has_a_range(model: type[BaseModel]) -> None:
    unbounded = [
        name
        for name, info in model.model_fields.items()
        if _numeric(info.annotation) and _bounds(model, name) != (True, True)
    ]
    assert unbounded == [], f"numeric settings without a lower and an upper bound: {unbounded}"


def test_absurd_values_are_refused_at_start() -> None:
    for value in (1e308, float("inf"), float("nan"), -5.0):
        with pytest.raises(ValidationError):
            get_settings(deadline_seconds=value)


async def test_the_settings_page_answers_422_outside_each_range(booth: Booth) -> None:
    await booth.configure("gemini", 1, prompt="x")
    # The test server sets the deadline as the environment would (which locks it): free it for the page.
    booth.services.config.base.model_fields_set.discard("deadline_seconds")
    numeric = [n for n in RUNTIME_EDITABLE if _numeric(Settings.model_fields[n].annotation)]
    assert "deadline_seconds" in numeric
    for name in numeric:
        with pytest.raises(settings_view.SettingsInvalid):
            settings_view.validate_changes({name: 1e308})
    async with booth.api() as client:
        for name in numeric:
            for absurd in (1e308, -1e308):
                response = await client.put("/api/settings", json={name: absurd})
                assert response.status_code == 422, f"{name}={absurd}: {response.status_code}"
                assert name in response.json()["errors"]
        for raw in (b'{"deadline_seconds": 1e999}', b'{"deadline_seconds": NaN}'):
            response = await client.put("/api/settings", content=raw, headers={"Content-Type": "application/json"})
            assert response.status_code == 422, raw
        slot_option = await client.put("/api/slots/turbotext/1", json={"options": {"seed": 10**30}})
        assert slot_option.status_code == 422
    assert booth.services.settings.deadline_seconds == 5.0, "nothing absurd was stored"
    assert (await booth.post("gemini", 1, make_jpeg(64, 48, seed=2))).status == 200


# ---------------------------------------------------------------- media links
async def test_media_links_are_revoked_the_moment_the_booth_is_answered(start: Start) -> None:  # noqa: F811
    tab = start(deadline_seconds=30.0)
    booth, fake = tab.booth, tab.fake
    await slot(booth, 1, "face_swap")
    answer = await booth.post("turbotext", 1, PHOTO)
    answered = time.monotonic()
    assert answer.status == 200
    urls = [f.url for f in fake.fetches]
    assert len(urls) == 2, "Turbotext fetched the photo and the reference while the job ran"
    async with httpx.AsyncClient() as client:
        statuses = [(await client.get(url)).status_code for url in urls]
    assert time.monotonic() - answered < 25, "checked long before the deadline"
    assert statuses == [404, 404], "links end with the answer, not at the deadline"
    assert len(booth.services.links) == 0
