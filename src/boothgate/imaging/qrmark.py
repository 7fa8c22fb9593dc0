"""The QR code on the print (issue 30): the guest's page address as a QR code, laid in a corner of the
shaped result with its quiet zone, optionally with a short caption. Pure and synchronous — runs on an
image worker inside `shape.shape_result`, after the cut and the overlay.

The modules come from segno (a QR library made for it), never drawn by hand here. Each module is a whole
number of pixels (no resampling blur, rounded to the nearest) and never fewer than `MIN_MODULE_PIXELS`:
on a 10×15 cm print at 1800×1200 px (300 dpi), a 33-module code (a ~60-character address, error
correction M) plus its quiet zone at 12 % of the short side is 4 px a module, 164 px, 14 mm wide.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import segno
from PIL import Image, ImageDraw, ImageFont

CORNERS = ("bottom_right", "bottom_left", "top_right", "top_left")
QUIET_MODULES = 4  # the quiet zone the standard asks for, on every side
MIN_MODULE_PIXELS = 4  # 0.34 mm at 300 dpi: the least a phone resolves from a print held in the hand
MARGIN_SHARE = 0.02  # the code's distance from the print's edge, of the short side
LABEL_CHARS = 40


@dataclass(frozen=True)
class QrMark:
    """Where and how large (plain data: crosses to a worker process)."""

    text: str  # the page's address
    corner: str = "bottom_right"
    size: float = 0.12  # the code's side (quiet zone included), of the print's short side
    label: str = ""


@cache
def _modules(text: str) -> tuple[tuple[bool, ...], ...]:
    code = segno.make_qr(text, error="m", boost_error=True)
    return tuple(tuple(bool(v) for v in row) for row in code.matrix)


def qr_image(text: str, module_pixels: int) -> Image.Image:
    """The code with its quiet zone, black on white, each module `module_pixels` square."""
    rows = _modules(text)
    count = len(rows) + 2 * QUIET_MODULES
    small = Image.new("L", (count, count), 255)
    pixels = small.load()
    assert pixels is not None
    for y, row in enumerate(rows):
        for x, dark in enumerate(row):
            if dark:
                pixels[x + QUIET_MODULES, y + QUIET_MODULES] = 0
    return small.resize((count * module_pixels, count * module_pixels), Image.Resampling.NEAREST)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  # Debian: Cyrillic included
        "C:/Windows/Fonts/arial.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
    ):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def lay_qr(im: Image.Image, mark: QrMark) -> Image.Image:
    """`im` with the code (and caption) composited in `mark.corner`."""
    short = min(im.size)
    count = len(_modules(mark.text)) + 2 * QUIET_MODULES
    module = max(MIN_MODULE_PIXELS, round(short * max(0.05, min(mark.size, 0.5)) / count))
    code = qr_image(mark.text, module)
    label = mark.label.strip()[:LABEL_CHARS]
    panel_h = code.height
    font = None
    if label:
        font = _font(max(10, module * 3))
        box = font.getbbox(label)
        text_h = int(box[3] - box[1])
        panel_h += text_h + module * 2
    panel = Image.new("RGB", (code.width, panel_h), (255, 255, 255))
    panel.paste(code.convert("RGB"), (0, 0))
    if label and font is not None:
        draw = ImageDraw.Draw(panel)
        width = draw.textlength(label, font=font)
        while width > code.width and len(label) > 4:  # too long for the panel: shortened, never overflowing
            label = label[:-2].rstrip() + "…"
            width = draw.textlength(label, font=font)
        draw.text(((code.width - width) / 2, code.height - module), label, fill=(0, 0, 0), font=font)
    margin = round(short * MARGIN_SHARE)
    if panel.width + 2 * margin > im.width or panel.height + 2 * margin > im.height:
        return im  # a print too small for a readable code gets none rather than an unreadable one
    corner = mark.corner if mark.corner in CORNERS else "bottom_right"
    x = margin if corner.endswith("left") else im.width - panel.width - margin
    y = margin if corner.startswith("top") else im.height - panel.height - margin
    out = im.copy()
    if out.mode == "RGBA":
        out.paste(panel.convert("RGBA"), (x, y))
    else:
        out = out.convert("RGB")
        out.paste(panel, (x, y))
    return out
