"""Any booth's field names (issue 28): one file part is the photo whatever its name; of several, fileToUpload,
file, image, photo in that order; the 400 names the parts it saw; the password also comes from
api_key / apikey / key fields and is never recorded."""

from __future__ import annotations

import secrets

import httpx

from tests.conftest import Booth, make_jpeg, make_png, open_image


def body(parts: list[tuple[str, bytes | str, str | None]]) -> tuple[bytes, str]:
    """(name, value, filename or None for a text field) → multipart body and its content type."""
    boundary = "----boothgate" + secrets.token_hex(8)
    out = b""
    for name, value, filename in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if filename is not None:
            head += f'; filename="{filename}"\r\nContent-Type: application/octet-stream'
        data = value.encode() if isinstance(value, str) else value
        out += head.encode() + b"\r\n\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


async def post(booth: Booth, number: int, parts: list[tuple[str, bytes | str, str | None]]) -> httpx.Response:
    data, content_type = body(parts)
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{booth.url}/booth/gemini/{number}", content=data, headers={"Content-Type": content_type}
        )


async def test_the_only_file_part_is_the_photo_whatever_its_name(booth: Booth) -> None:
    await booth.configure("gemini", 11, prompt="x")
    for name in ("image", "upload", "photo_1"):
        answer = await post(
            booth, 11, [("password", booth.upload_password, None), (name, make_jpeg(seed=len(name)), "a.jpg")]
        )
        assert answer.status_code == 200, answer.text


async def test_of_several_file_parts_the_best_named_is_the_photo(booth: Booth) -> None:
    await booth.configure("gemini", 12, prompt="x", output_format="png")
    preview, photo = make_png(), make_jpeg(1000, 500, seed=12)
    answer = await post(
        booth,
        12,
        [("password", booth.upload_password, None), ("thumbnail", preview, "t.png"), ("image", photo, "p.jpg")],
    )
    assert answer.status_code == 200, answer.text
    [call] = booth.calls
    assert call.photo_size[0] > call.photo_size[1]  # the 1000×500 photo, not the preview
    assert open_image(answer.content).size[0] > open_image(answer.content).size[1]


async def test_several_unnamed_file_parts_are_a_400_that_names_them(booth: Booth) -> None:
    await booth.configure("gemini", 13, prompt="x")
    answer = await post(
        booth,
        13,
        [
            ("password", booth.upload_password, None),
            ("a", make_jpeg(seed=1), "a.jpg"),
            ("b", make_jpeg(seed=2), "b.jpg"),
        ],
    )
    assert answer.status_code == 400
    assert "'a'" in answer.text and "'b'" in answer.text and "fileToUpload" in answer.text
    assert not booth.calls


async def test_no_file_part_names_what_came(booth: Booth) -> None:
    await booth.configure("gemini", 14, prompt="x")
    answer = await post(booth, 14, [("password", booth.upload_password, None), ("note", "hello", None)])
    assert answer.status_code == 400 and "'note'" in answer.text
    assert booth.upload_password not in answer.text


async def test_the_password_may_come_as_api_key_apikey_or_key_and_is_not_recorded(booth: Booth) -> None:
    await booth.configure("gemini", 15, prompt="x")
    for field in ("api_key", "apikey", "key"):
        answer = await post(booth, 15, [(field, booth.upload_password, None), ("file", make_jpeg(seed=3), "p.jpg")])
        assert answer.status_code == 200, (field, answer.text)
    wrong = await post(booth, 15, [("key", "not-the-password", None), ("file", make_jpeg(seed=4), "p.jpg")])
    assert wrong.status_code == 401
    async with booth.api() as client:
        jobs = (await client.get("/api/jobs", params={"limit": 20})).text
    assert booth.upload_password not in jobs and "not-the-password" not in jobs
