"""Make the README's and the manual's two pictures (docs/img/): a before/after of the offline engine, and
the admin UI with a slot card that has just been tried.

    PYTHONPATH=src .venv/bin/python scripts/manual_images.py

The photo is scikit-image's astronaut (NASA, public domain) and the new background its rocket, both
shipped inside the test extras' wheels: nothing is downloaded. The before/after goes through the same
`engine.run` the offline tab uses; the screenshot is of a real server on loopback (a throw-away data
folder) in Debian's Chromium, driven by Playwright, after **Try it** on an offline background slot.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import httpx
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.server import serve  # noqa: E402

from boothgate.local import engine  # noqa: E402
from boothgate.settings import get_settings  # noqa: E402
from boothgate.web.app import create_app  # noqa: E402

OUT = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
ADMIN = ("admin", "manual-pictures-only")


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def before_after(photo: bytes, backdrop: bytes) -> None:
    """The guest's photo and the offline engine's background replacement, side by side."""
    job = engine.Job("background", photo, backdrop, "warm_film", 1200, 92, 200)
    result = Image.open(io.BytesIO(engine.run(job)[0])).convert("RGB")
    before = Image.open(io.BytesIO(photo)).convert("RGB")
    height = 420
    size = (round(before.width * height / before.height), height)
    pair = [im.resize(size, Image.Resampling.LANCZOS) for im in (before, result)]
    gap = 12
    canvas = Image.new("RGB", (pair[0].width + gap + pair[1].width, height), "white")
    canvas.paste(pair[0], (0, 0))
    canvas.paste(pair[1], (pair[0].width + gap, 0))
    canvas.save(OUT / "before-after.jpg", "JPEG", quality=82, optimize=True)


def screenshot(photo: bytes, backdrop: bytes) -> None:
    """The slot card of `local/1` after Try it, in English, on a laptop-sized window."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        settings = get_settings(data_dir=Path(tmp), admin_password=ADMIN[1], upload_password="shown-only-here",
                                language="en")  # fmt: skip
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, auth=ADMIN, timeout=60) as api:
            slot = {"enabled": True, "name": "Launch day", "kind": "background", "prompt": ""}
            api.put("/api/slots/local/1", json=slot).raise_for_status()
            files = {"file": ("rocket.jpg", backdrop, "image/jpeg")}
            api.put("/api/slots/local/1/reference", files=files).raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
                context = browser.new_context(
                    base_url=url, viewport={"width": 1200, "height": 1000},
                    http_credentials={"username": ADMIN[0], "password": ADMIN[1]},
                )  # fmt: skip
                page = context.new_page()
                page.goto("/tabs/local/1")
                card = page.locator("#slot-1")
                card.locator(".try-file").set_input_files(
                    {"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": photo}
                )
                card.locator(".try-result").wait_for(state="visible", timeout=60_000)
                page.wait_for_function("document.querySelector('.try-result').naturalWidth > 0", timeout=60_000)
                page.screenshot(path=str(OUT / "ui.png"), full_page=True)
                browser.close()
    image = Image.open(OUT / "ui.png")
    image.convert("P", palette=Image.Palette.ADAPTIVE, colors=128).save(OUT / "ui.png", optimize=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photo = jpeg(Image.fromarray(data.astronaut()).resize((1024, 1024), Image.Resampling.LANCZOS))
    backdrop = jpeg(Image.fromarray(data.rocket()))
    before_after(photo, backdrop)
    screenshot(photo, backdrop)
    for name in ("before-after.jpg", "ui.png"):
        print(f"{OUT / name}: {(OUT / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
