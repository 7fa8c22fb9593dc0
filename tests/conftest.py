"""Shared fixtures: photos made by the tests, a scripted test provider, and the whole server on loopback.

`booth` starts boothgate on a real 127.0.0.1 socket (uvicorn in a thread) with its data in tmp_path.
Provider modules are replaced per tab with `registry_classes`; the scripted provider's behaviour is
set through the slot's options, so each test says what the provider does by configuring the slot.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from boothgate import errors
from boothgate.cli.booth_client import BoothAnswer, post_photo_async
from boothgate.providers.base import Provider, ProviderRequest, ProviderResult
from boothgate.settings import Settings, get_settings
from boothgate.storage.db import Database
from boothgate.web.app import create_app
from tests.fakes.server import serve

ADMIN = ("admin", "admin-secret-for-tests")
UPLOAD_PASSWORD = "booth-secret-123"

# ---------------------------------------------------------------- no paid calls from tests
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "localhost", "::1") and not str(name).startswith("127."):
        raise OSError(f"tests may only reach loopback, not {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


GOOGLE_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")


@pytest.fixture(autouse=True)
def _guard_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only)
    for name in list(os.environ):
        # AWS_*: the S3 variables a node would read for its media bucket (storage/objects.py).
        if name.startswith(("BOOTHGATE_", "AWS_")) or name in GOOGLE_VARIABLES:
            monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------- photos
def photo_array(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A photo-like image: smooth gradients plus sensor-like noise (so JPEG sizes are realistic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(x / (width / 3.1) + seed),
            128 + 100 * np.cos(y / (height / 2.3)),
            128 + 60 * np.sin((x + y) / (width / 5.0)),
        ],
        axis=-1,
    )
    noise = rng.normal(0, 12, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def make_jpeg(
    width: int = 800, height: int = 600, seed: int = 0, quality: int = 90, exif_orientation: int = 0
) -> bytes:
    image = Image.fromarray(photo_array(width, height, seed))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": quality}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def make_png(width: int = 400, height: int = 300, transparent: bool = True, seed: int = 0) -> bytes:
    rgb = photo_array(width, height, seed)
    alpha = np.full((height, width, 1), 255, dtype=np.uint8)
    if transparent:
        alpha[: height // 2] = 0
    image = Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# ---------------------------------------------------------------- scripted provider
class ScriptedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: str = Field("invert", description="invert | png | fail | refuse | rate_limit | not_image | crash")
    delay_seconds: float = Field(0.0, ge=0, description="Seconds to wait before answering.")


@dataclass
class Call:
    job_id: str
    kind: str
    prompt: str
    photo_size: tuple[int, int]
    photo_mime: str
    photo_bytes: int
    has_reference: bool
    deadline_remaining: float


class ScriptedProvider(Provider):
    """A provider whose behaviour is set by the slot's options; records every call it receives."""

    name = "scripted"
    label = "Scripted"
    Options = ScriptedOptions
    calls: ClassVar[list[Call]] = []

    async def run(self, request: ProviderRequest) -> ProviderResult:
        options = request.options
        assert isinstance(options, ScriptedOptions)
        self.calls.append(
            Call(
                request.job_id,
                request.kind.value,
                request.prompt,
                (request.photo.width, request.photo.height),
                request.photo.mime,
                len(request.photo.data),
                request.reference is not None,
                request.deadline.remaining(),
            )
        )
        if options.delay_seconds:
            await asyncio.sleep(options.delay_seconds)
        mode = options.mode
        if mode == "fail":
            raise errors.ProviderFailed("The scripted provider failed.")
        if mode == "refuse":
            raise errors.ProviderRefused("The scripted provider refused the photo.")
        if mode == "rate_limit":
            raise errors.RateLimited("The scripted provider's quota is exhausted.")
        if mode == "crash":
            raise RuntimeError("scripted crash")
        if mode == "not_image":
            return ProviderResult(b"<html>oops</html>", "text/html")
        image = open_image(request.photo.data).convert("RGB")
        inverted = Image.eval(image, lambda v: 255 - v)
        buf = io.BytesIO()
        if mode == "png":
            inverted.putalpha(128)
            inverted.save(buf, "PNG")
            return ProviderResult(buf.getvalue(), "image/png", {"model": "scripted", "cost_usd": 0.01})
        inverted.save(buf, "JPEG", quality=90)
        return ProviderResult(buf.getvalue(), "image/jpeg", {"model": "scripted", "cost_usd": 0.01})


class KeyedProvider(ScriptedProvider):
    """Needs an API key that the tests never set: answers 503 provider_not_configured."""

    key_setting = "turbotext_api_key"


# ---------------------------------------------------------------- the server
@dataclass
class Booth:
    url: str
    settings: Settings
    app: Any
    upload_password: str = UPLOAD_PASSWORD
    calls: list[Call] = field(default_factory=list)

    @property
    def services(self) -> Any:
        return self.app.state.services

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, auth=ADMIN, timeout=30)

    async def configure(self, provider: str, number: int, **fields: Any) -> dict[str, Any]:
        fields.setdefault("enabled", True)
        async with self.api() as client:
            response = await client.put(f"/api/slots/{provider}/{number}", json=fields)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def set_reference(self, provider: str, number: int, data: bytes) -> None:
        async with self.api() as client:
            response = await client.put(
                f"/api/slots/{provider}/{number}/reference", files={"file": ("ref.jpg", data, "image/jpeg")}
            )
        assert response.status_code == 200, response.text

    async def post(
        self, provider: str, number: int | str, photo: bytes, password: str | None = None, **kwargs: Any
    ) -> BoothAnswer:
        pw = self.upload_password if password is None else password
        return await post_photo_async(f"{self.url}/booth/{provider}/{number}", photo, pw or None, **kwargs)

    async def job(self, job: BoothAnswer | str) -> dict[str, Any]:
        """The job's record (`/api/jobs/<id>`), by its id or by the booth's answer (its X-Job-Id)."""
        job_id = job if isinstance(job, str) else job.headers["x-job-id"]
        async with self.api() as client:
            response = await client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def stats(self) -> dict[str, Any]:
        async with self.api() as client:
            response = await client.get("/api/stats")
        assert response.status_code == 200
        result: dict[str, Any] = response.json()
        return result

    def trash_files(self) -> list[Path]:
        return sorted(p for p in (self.settings.data_dir / "trash").rglob("*") if p.is_file())


def booth_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "admin_password": ADMIN[1],
        "upload_password": UPLOAD_PASSWORD,
        "deadline_seconds": 5.0,
        "public_base_url": "",
    }
    values.update(overrides)
    return get_settings(**values)


@pytest.fixture
def booth_factory(tmp_path: Path) -> Iterator[Any]:
    """Start a server with chosen settings and providers: `async with booth_factory(...) as booth`."""
    stack: list[Any] = []

    def start(registry_classes: dict[str, type[Provider]] | None = None, **overrides: Any) -> Booth:
        settings = booth_settings(tmp_path, **overrides)
        classes = (
            {"gemini": ScriptedProvider, "turbotext": KeyedProvider} if registry_classes is None else registry_classes
        )
        app = create_app(settings, classes)
        context = serve(app)
        url = context.__enter__()
        stack.append(context)
        return Booth(url, settings, app, calls=ScriptedProvider.calls)

    ScriptedProvider.calls.clear()
    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
    ScriptedProvider.calls.clear()


@pytest.fixture
async def booth(booth_factory: Any) -> AsyncIterator[Booth]:
    yield booth_factory()


# ---------------------------------------------------------------- a real provider tab against its wire fake
REAL_TABS = ("gemini", "turbotext", "openai", "fal", "deepseek", "local")
TAB_KEYS = {
    "gemini": "booth-test-gemini-key",
    "openai": "sk-booth-test-openai-key-0123",
    "fal": "fal-booth-test:secret-0123456789",
    "turbotext": "tt-test-key",
    "deepseek": "sk-fake-deepseek-0123456789",
}


@dataclass
class Tab:
    """One provider tab served by its real module: boothgate, the tab's wire-format fake behind a
    FaultGate (`fake`, `gate`; None for the offline tab) and, for DeepSeek, the fake it renders with (Gemini's,
    or Turbotext's)."""

    name: str
    booth: Booth
    fake: Any = None
    gate: Any = None
    renderer: Any = None
    renderer_gate: Any = None

    def reset(self) -> None:
        for fake in (self.fake, self.renderer):
            if fake is None:
                continue
            if hasattr(fake, "reset"):
                fake.reset()
            else:  # the DeepSeek fake: recorded requests and its default answer
                fake.received.clear()
                fake.default_mode = "instruction"
        for gate in (self.gate, self.renderer_gate):
            if gate is not None:
                gate.reset()


def start_fakes(
    name: str, stack: ExitStack, renderer_tab: str | None = "gemini"
) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
    """Tab `name`'s wire fake behind a FaultGate named `name` (and DeepSeek's renderer, the fake of
    `renderer_tab`, behind one named "renderer"; None: no renderer's fake), running until `stack` closes;
    returns (fake, gate, renderer, renderer gate, the settings that point boothgate at them)."""
    from tests.fakes.deepseek import FakeDeepSeek
    from tests.fakes.fal import FakeFal
    from tests.fakes.faults import fault_gate
    from tests.fakes.gemini import GeminiFake
    from tests.fakes.openai import FakeOpenAI
    from tests.fakes.turbotext import FakeTurbotext

    values: dict[str, Any] = {}
    fake: Any = None
    renderer: Any = None
    renderer_gate: Any = None
    if name == "gemini":
        fake = GeminiFake(api_key=TAB_KEYS["gemini"])
    elif name == "openai":
        fake = FakeOpenAI(api_key=TAB_KEYS["openai"])
    elif name == "fal":
        fake = FakeFal(api_key=TAB_KEYS["fal"])
    elif name == "turbotext":
        fake = FakeTurbotext()
    elif name == "deepseek":
        fake = FakeDeepSeek()
        values.update(deepseek_stage_seconds=1.0)
        if renderer_tab is not None:
            renderer = GeminiFake(api_key=TAB_KEYS["gemini"]) if renderer_tab == "gemini" else FakeTurbotext()
            renderer_gate = stack.enter_context(fault_gate(stack.enter_context(serve(renderer.app)), "renderer"))
            values.update(_pointed_at(renderer_tab, renderer_gate.url))
    elif name != "local":
        raise ValueError(f"no such tab: {name}")
    if fake is None:
        return None, None, None, None, values
    gate = stack.enter_context(fault_gate(stack.enter_context(serve(fake.app)), name))
    values.update(_pointed_at(name, gate.url))
    return fake, gate, renderer, renderer_gate, values


def _pointed_at(name: str, url: str) -> dict[str, Any]:
    """The settings that point tab `name` at its fake (through its gate) at `url`."""
    return {
        "gemini": {"gemini_api_key": TAB_KEYS["gemini"], "gemini_base_url": url},
        "openai": {"openai_api_key": TAB_KEYS["openai"], "openai_base_url": url + "/v1"},
        "fal": {"fal_api_key": TAB_KEYS["fal"], "fal_queue_url": url, "fal_poll_interval_seconds": 0.1},
        "turbotext": {
            "turbotext_api_key": TAB_KEYS["turbotext"],
            "turbotext_base_url": url + "/api_ai",
            "turbotext_poll_interval_seconds": 0.05,
        },
        "deepseek": {"deepseek_api_key": TAB_KEYS["deepseek"], "deepseek_base_url": url},
    }[name]


@contextmanager
def running_tab(
    name: str,
    tmp: Path,
    classes: dict[str, type[Provider]] | None = None,
    renderer_tab: str | None = "gemini",
    **overrides: Any,
) -> Iterator[Tab]:
    """boothgate with the built-in provider of tab `name` pointed at its fake through a fault gate.

    The one way every provider's booth test starts its server and fake; `overrides` are settings. `classes`
    replaces provider classes by tab (a subclass of the real module with a bug planted in it, say);
    `renderer_tab` is the tab whose fake DeepSeek renders with (None: a stand-in in `classes` renders)."""
    from tests.fakes.server import free_port

    port = free_port()  # known in advance: the public address media links are published on
    with ExitStack() as stack:
        fake, gate, renderer, renderer_gate, values = start_fakes(name, stack, renderer_tab)
        values = {"deadline_seconds": 3.0, "public_base_url": f"http://127.0.0.1:{port}", **values, **overrides}
        settings = booth_settings(tmp, **values)
        app = create_app(settings, classes or {})  # by default the built-in provider modules serve every tab
        url = stack.enter_context(serve(app, port=port))
        yield Tab(name, Booth(url, settings, app), fake, gate, renderer, renderer_gate)


@pytest.fixture(scope="module")
def tab_rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tab]:
    """The module's tab (`TAB = "gemini"`, settings in `TAB_SETTINGS`), one server and fake per module."""
    name: str = request.module.TAB
    with running_tab(
        name, tmp_path_factory.mktemp(f"{name}-tab"), **getattr(request.module, "TAB_SETTINGS", {})
    ) as tab:
        yield tab


@pytest.fixture
def tab(tab_rig: Tab) -> Tab:
    """The module's tab with its fakes and gate reset for this test."""
    tab_rig.reset()
    return tab_rig


@pytest.fixture
def tab_factory(tmp_path: Path) -> Iterator[Any]:
    """Start a real tab with chosen settings for one test: `tab = tab_factory("gemini", deadline_seconds=8)`
    (`classes` and `renderer_tab` as in `running_tab`)."""
    with ExitStack() as stack:

        def start(name: str, classes: dict[str, type[Provider]] | None = None, **overrides: Any) -> Tab:
            tab: Tab = stack.enter_context(
                running_tab(name, tmp_path / f"{name}-{len(stack._exit_callbacks)}", classes, **overrides)
            )
            return tab

        yield start


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database of its own (no server), disposed of after the test."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}")
    await database.migrate()
    yield database
    await database.engine.dispose()
