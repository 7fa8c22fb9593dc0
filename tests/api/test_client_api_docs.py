"""docs/client-api.md's Python examples run as written against a real server (job, batch, receiver)."""

from __future__ import annotations

import asyncio
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_client_api import make_key
from tests.conftest import Booth
from tests.fakes.server import serve
from tests.local_photos import astronaut, grace_hopper, jpeg

DOC = Path(__file__).parents[2] / "docs" / "client-api.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def run(code: str, namespace: dict[str, Any]) -> dict[str, Any]:
    exec(compile(code, str(DOC), "exec"), namespace)  # our own documentation's example
    return namespace


async def test_the_job_and_batch_examples_work(booth: Booth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await booth.configure("gemini", 3, prompt="a {style} portrait")
    key = (await make_key(booth))["key"]
    job, batch, _ = python_blocks()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "guest.jpg").write_bytes(jpeg(astronaut(0.5)))
    (tmp_path / "guests").mkdir()
    for n in range(3):
        (tmp_path / "guests" / f"g{n}.jpg").write_bytes(jpeg(grace_hopper(0.3 + n / 10)))
    setup = f'BASE = "{booth.url}"\nKEY = "{key}"\n'
    job_code = re.sub(r"^(BASE|KEY) = .*$", "", job, flags=re.M)
    await asyncio.to_thread(run, setup + job_code, {})
    assert (tmp_path / "result.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert booth.calls[-1].prompt == "a golden portrait"
    await asyncio.to_thread(run, batch, {"BASE": booth.url, "KEY": key})
    with zipfile.ZipFile(tmp_path / "results.zip") as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "results/g0.jpg", "results/g1.jpg", "results/g2.jpg"]


async def test_the_receiver_example_verifies_a_real_delivery(booth_factory: Any) -> None:
    booth: Booth = booth_factory(webhooks_allow_private=True)
    receiver = python_blocks()[2]
    namespace = run(receiver.replace('SECRET = "whsec_…"', 'SECRET = "whsec_cGxhY2Vob2xkZXI="'), {})
    with serve(namespace["app"]) as url:
        async with booth.api() as admin:
            created = (
                await admin.post("/api/webhooks", json={"url": f"{url}/boothgate", "events": ["job.failed"]})
            ).json()
            namespace["SECRET"] = created["secret"]
            await admin.post(f"/api/webhooks/{created['id']}/test")
            loop = asyncio.get_running_loop()
            end = loop.time() + 20
            deliveries: list[dict[str, Any]] = []
            while loop.time() < end:
                deliveries = (await admin.get(f"/api/webhooks/{created['id']}/deliveries")).json()
                if namespace["seen"] and deliveries[0]["status"] == "delivered":
                    break
                await asyncio.sleep(0.05)
    assert len(namespace["seen"]) == 1 and deliveries[0]["status"] == "delivered"
    assert deliveries[0]["id"] in namespace["seen"]
