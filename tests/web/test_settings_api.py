"""GET/PUT /api/settings over a real socket: masking, environment wins, validation, no secret leaks."""

from __future__ import annotations

from typing import Any

import httpx

from boothgate.operator.settings_view import mask
from boothgate.settings import RUNTIME_EDITABLE
from tests.conftest import ADMIN, Booth

GEMINI_KEY = "AIzaTestKey-0123456789-abcdefWXYZ"
TURBOTEXT_KEY = "tt-secret-key-5551234"


def by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in listing["settings"]}


async def get_listing(booth: Booth) -> dict[str, dict[str, Any]]:
    async with booth.api() as client:
        response = await client.get("/api/settings")
    assert response.status_code == 200
    return by_name(response.json())


async def put(booth: Booth, changes: dict[str, Any]) -> httpx.Response:
    async with booth.api() as client:
        return await client.put("/api/settings", json=changes)


def test_mask_shows_at_most_the_last_four_characters() -> None:
    assert mask("0123456789abcdefWXYZ") == "••••WXYZ"
    assert mask("0123456789ab") == "••••ab"
    assert mask("short") == "••••"
    assert "short" not in mask("short")


async def test_lists_every_editable_setting_with_description_and_source(booth: Booth) -> None:
    listing = await get_listing(booth)
    assert set(listing) == set(RUNTIME_EDITABLE)
    model = listing["gemini_model"]
    assert model["source"] == "default"
    assert model["editable"] is True
    assert model["description"]
    assert model["env"] == "BOOTHGATE_GEMINI_MODEL"
    assert listing["language"]["choices"] == ["ru", "en"]
    assert listing["gemini_api_key"] == {
        **listing["gemini_api_key"],
        "secret": True,
        "set": False,
        "masked": None,
        "value": None,
    }
    # the test server passes deadline_seconds at start-up: it counts as set by the environment
    assert listing["deadline_seconds"]["source"] == "environment"
    assert listing["deadline_seconds"]["editable"] is False


async def test_secret_is_stored_masked_and_takes_effect(booth: Booth) -> None:
    response = await put(booth, {"turbotext_api_key": TURBOTEXT_KEY})
    assert response.status_code == 200, response.text
    assert TURBOTEXT_KEY not in response.text
    listing = await get_listing(booth)
    key = listing["turbotext_api_key"]
    assert (key["set"], key["masked"], key["source"], key["value"]) == (True, "••••1234", "stored", None)
    # the provider was rebuilt with the new key: the turbotext tab is ready now
    async with booth.api() as client:
        described = (await client.get("/api/providers")).json()
    # listed in tab order (the scripted test providers all call themselves "scripted")
    providers = dict(zip(booth.services.registry.tabs, described, strict=True))
    assert providers["turbotext"]["configured"] is True


async def test_empty_secret_leaves_the_key_as_it_is(booth: Booth) -> None:
    assert (await put(booth, {"gemini_api_key": GEMINI_KEY})).status_code == 200
    assert (await put(booth, {"gemini_api_key": "", "gemini_model": "gemini-next"})).status_code == 200
    listing = await get_listing(booth)
    assert listing["gemini_api_key"]["masked"] == "••••WXYZ"
    assert listing["gemini_model"]["value"] == "gemini-next"
    assert booth.services.settings.gemini_api_key.get_secret_value() == GEMINI_KEY


async def test_no_secret_appears_in_any_response(booth: Booth) -> None:
    await put(booth, {"gemini_api_key": GEMINI_KEY, "turbotext_api_key": TURBOTEXT_KEY})
    await booth.configure("gemini", 1, prompt="x")
    answer = await booth.post("gemini", 1, b"not an image")
    assert answer.status == 415
    paths = [
        "/api/settings",
        "/api/providers",
        "/api/stats",
        "/api/slots",
        "/api/slots/gemini/1",
        "/api/jobs",
        "/health",
        "/tabs/gemini",
        "/tabs/turbotext",
        "/settings",
    ]
    async with booth.api() as client:
        for path in paths:
            response = await client.get(path)
            assert response.status_code == 200, path
            for secret in (GEMINI_KEY, TURBOTEXT_KEY, GEMINI_KEY[-8:], TURBOTEXT_KEY[-8:]):
                assert secret not in response.text, f"{path} leaks a secret"


async def test_environment_wins_and_refuses_changes(booth_factory: Any) -> None:
    booth = booth_factory(gemini_model="model-from-env", gemini_api_key="env-key-0123456789abcd")
    listing = await get_listing(booth)
    assert listing["gemini_model"]["source"] == "environment"
    assert listing["gemini_model"]["value"] == "model-from-env"
    assert listing["gemini_api_key"]["masked"] == "••••abcd"
    assert listing["gemini_api_key"]["source"] == "environment"

    response = await put(booth, {"gemini_model": "other", "gemini_base_url": "http://127.0.0.1:9"})
    assert response.status_code == 409
    assert response.json()["errors"] == {"gemini_model": "set in the environment"}
    secret_change = await put(booth, {"gemini_api_key": "new-key-from-the-page-000"})
    assert secret_change.status_code == 409
    after = await get_listing(booth)
    assert after["gemini_model"]["value"] == "model-from-env"
    assert after["gemini_base_url"]["source"] == "default", "nothing of a refused change is stored"
    assert "env-key-0123456789abcd" not in str(after)


async def test_invalid_values_answer_422_per_field_and_store_nothing(booth: Booth) -> None:
    response = await put(
        booth,
        {
            "retention_days": 0,
            "gemini_base_url": "ftp://example",
            "language": "de",
            "gemini_model": "  ",
            "trash_retention_days": 90,
            "admin_password": "sneaky",
        },
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"retention_days", "gemini_base_url", "language", "gemini_model", "admin_password"}
    assert "http" in errors["gemini_base_url"]
    listing = await get_listing(booth)
    assert listing["trash_retention_days"]["value"] == 60, "a valid change in a refused request is not stored"
    assert listing["retention_days"]["value"] == 30


async def test_values_are_typed_and_null_resets_to_default(booth: Booth) -> None:
    response = await put(booth, {"retention_days": "7", "gemini_base_url": "http://127.0.0.1:9999/"})
    assert response.status_code == 200, response.text
    listing = by_name(response.json())
    assert listing["retention_days"]["value"] == 7
    assert listing["retention_days"]["source"] == "stored"
    assert listing["gemini_base_url"]["value"] == "http://127.0.0.1:9999"
    assert booth.services.settings.retention_days == 7

    listing = by_name((await put(booth, {"retention_days": None})).json())
    assert listing["retention_days"]["value"] == 30
    assert listing["retention_days"]["source"] == "default"


async def test_settings_api_needs_admin_and_same_origin(booth: Booth) -> None:
    async with httpx.AsyncClient(base_url=booth.url) as anonymous:
        assert (await anonymous.get("/api/settings")).status_code == 401
    async with httpx.AsyncClient(base_url=booth.url, auth=("admin", "wrong")) as wrong:
        assert (await wrong.get("/api/settings")).status_code == 401
    async with httpx.AsyncClient(base_url=booth.url, auth=ADMIN) as client:
        response = await client.put(
            "/api/settings", json={"gemini_model": "evil"}, headers={"Origin": "http://evil.example"}
        )
    assert response.status_code == 403
    assert (await get_listing(booth))["gemini_model"]["source"] == "default"
