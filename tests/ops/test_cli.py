"""`boothgate send` posts like DSLR Remote Pro and reports what happened."""

from __future__ import annotations

import asyncio
from pathlib import Path

from boothgate.cli.main import main
from tests.conftest import Booth, make_jpeg, open_image


async def test_send_saves_the_result(booth: Booth, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    await booth.configure("gemini", 1, prompt="x")
    photo = tmp_path / "IMG_0001.JPG"
    photo.write_bytes(make_jpeg(seed=1))
    out = tmp_path / "result.jpg"
    code = await asyncio.to_thread(
        main,
        ["send", f"{booth.url}/booth/gemini/1", str(photo), "--password", booth.upload_password, "--out", str(out)],
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "HTTP 200" in printed and str(out) in printed
    assert open_image(out.read_bytes()).format == "JPEG"
    [job] = await booth.services.jobs.find()
    assert job.meta["filename"] == "IMG_0001.JPG" and job.meta["version"] == "3.30.2"


async def test_send_reports_errors(booth: Booth, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    photo = tmp_path / "p.jpg"
    photo.write_bytes(make_jpeg())
    code = await asyncio.to_thread(main, ["send", f"{booth.url}/booth/gemini/1", str(photo), "--password", "bad"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "HTTP 401" in printed and "unauthorized" in printed
    assert await asyncio.to_thread(main, ["send", f"{booth.url}/booth/gemini/1", str(tmp_path / "none.jpg")]) == 2
