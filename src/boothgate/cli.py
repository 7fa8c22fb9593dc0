"""Command line: `boothgate serve` and `boothgate send`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from boothgate import __version__

if TYPE_CHECKING:
    from boothgate.providers.base import Provider

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def configure_logging(level: str = "INFO", access_log: bool = False) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Request lines can carry passwords in query strings: off unless asked for, then masked (link_secrets).
    logging.getLogger("uvicorn.access").disabled = not access_log


def serve(args: argparse.Namespace, registry_classes: dict[str, type[Provider]] | None = None) -> int:
    """`boothgate serve`; the benchmark calls it too, with its fake provider in `registry_classes`."""
    import uvicorn

    from boothgate.settings import get_settings
    from boothgate.web.app import create_app
    from boothgate.web.server import uvicorn_options

    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    settings = get_settings(**overrides)
    configure_logging(args.log_level, settings.access_log)
    app = create_app(settings, registry_classes)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level.lower(),
        **uvicorn_options(settings),
    )
    return EXIT_OK


def send(args: argparse.Namespace) -> int:
    from boothgate.booth_client import post_photo
    from boothgate.link_secrets import mask_query

    photo_path = Path(args.photo)
    if not photo_path.is_file():
        print(f"No such photo: {photo_path}", file=sys.stderr)
        return EXIT_USAGE
    try:
        answer = post_photo(
            args.url, photo_path.read_bytes(), args.password, filename=photo_path.name, timeout=args.timeout
        )
    except TimeoutError:
        print(f"No answer within {args.timeout:g} s (the booth would use the original photo).")
        return EXIT_FAILED
    except OSError as exc:
        print(f"Could not reach {mask_query(args.url)}: {mask_query(str(exc))}")  # a link may carry the password
        return EXIT_FAILED
    print(f"HTTP {answer.status} in {answer.seconds:.2f} s ({len(answer.body):,} bytes, {answer.content_type})")
    if answer.status == 200 and answer.content_type.startswith("image/"):
        extension = "png" if "png" in answer.content_type else "jpg"
        out = Path(args.out or f"{photo_path.stem}-result.{extension}")
        out.write_bytes(answer.body)
        fallback = answer.headers.get("x-boothgate-fallback")
        if fallback:
            print(f"Processing failed ({fallback}); the server answered with the original photo.")
        print(f"Result saved to {out}")
        return EXIT_OK
    print(answer.body.decode("utf-8", "replace")[:2000])
    return EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="boothgate", description="AI gateway for photobooths.")
    root.add_argument("--version", action="version", version=f"boothgate {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the server")
    serve_cmd.add_argument("--host", help="listen address (overrides BOOTHGATE_HOST)")
    serve_cmd.add_argument("--port", type=int, help="listen port (overrides BOOTHGATE_PORT)")
    serve_cmd.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve_cmd.set_defaults(handler=serve)
    send_cmd = commands.add_parser("send", help="post a photo to an upload link exactly like DSLR Remote Pro")
    send_cmd.add_argument("url", help="the slot's upload link, e.g. http://host:8000/booth/gemini/1")
    send_cmd.add_argument("photo", help="path of a JPEG or PNG")
    send_cmd.add_argument("--password", help="the upload password (Statistics panel)")
    send_cmd.add_argument("--out", help="where to save the result (default: <photo>-result.jpg)")
    send_cmd.add_argument("--timeout", type=float, default=50.0, help="seconds to wait, like the booth (50)")
    send_cmd.set_defaults(handler=send)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.handler(args)
    return result
