"""The second step of the fal background option: lay BiRefNet's cut-out onto the slot's background.

The background is cover-fitted (scaled to cover the cut-out's frame, centred, the overflow cropped) so
the result has the photo's size and shape and no bars. Blocking Pillow work: the provider runs it on
the image workers, so it is a module-level function of bytes (picklable for worker processes).
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

MIME = {"jpeg": "image/jpeg", "png": "image/png"}


def cover(background: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`background` scaled to cover `size` and centre-cropped to it."""
    return ImageOps.fit(background, size, Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def composite_cover(cutout: bytes, background: bytes, fmt: str = "jpeg", quality: int = 90) -> tuple[bytes, str]:
    """The cut-out (RGBA, transparent where the old background was) over the cover-fitted background,
    encoded as `fmt` ("jpeg" or "png"). Returns (bytes, MIME)."""
    with Image.open(io.BytesIO(cutout)) as cut_image:
        cut = cut_image.convert("RGBA")
    with Image.open(io.BytesIO(background)) as bg_file:
        upright = ImageOps.exif_transpose(bg_file)
        scene = cover(upright.convert("RGBA"), cut.size)
    scene.alpha_composite(cut)
    out = io.BytesIO()
    if fmt == "png":
        scene.save(out, "PNG")
    else:
        scene.convert("RGB").save(out, "JPEG", quality=quality)
        fmt = "jpeg"
    return out.getvalue(), MIME[fmt]
