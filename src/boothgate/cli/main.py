"""Command line: `boothgate serve`, `migrate`, `send`, `rehearse`, `reset-admin-password`, `install-service`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from boothgate import __version__
from boothgate.cli import rehearse as rehearse_cli

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
    from boothgate.web.server import DrainingServer, uvicorn_options

    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    settings = get_settings(**overrides)
    configure_logging(args.log_level, settings.access_log)
    app = create_app(settings, registry_classes)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=args.log_level.lower(), **uvicorn_options(settings)
    )

    def drain() -> None:
        app.state.services.begin_drain()

    DrainingServer(config, settings.drain_seconds, drain).run()
    return EXIT_OK


def migrate(args: argparse.Namespace) -> int:
    """`boothgate migrate`: bring the database schema to this version's, once, before the nodes start.
    Safe beside a starting node or a second `migrate` (PostgreSQL: an advisory lock; SQLite: its write lock)."""
    import asyncio

    from boothgate.settings import get_settings
    from boothgate.storage.db import Database

    async def run() -> tuple[str | None, str | None]:
        settings = get_settings()
        if settings.database_url == "":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.sqlalchemy_url)
        try:
            return await db.migrate()  # read before and after under the lock: what this run did
        finally:
            await db.dispose()

    try:
        before, after = asyncio.run(run())
    except Exception as exc:  # the URL's password never reaches the message: SQLAlchemy masks it
        print(f"Migration failed: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return EXIT_FAILED
    if before == after:
        print(f"The database schema is up to date ({after}).")
    else:
        print(f"The database schema went from {before or 'empty'} to {after}.")
    return EXIT_OK


def send(args: argparse.Namespace) -> int:
    from boothgate.cli.booth_client import post_photo
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


def reset_admin_password(args: argparse.Namespace) -> int:
    """A new admin password: generated and printed, or the one given with --password or on stdin."""
    import asyncio

    from boothgate.ops.admin import PasswordRefused
    from boothgate.ops.admin import reset_admin_password as reset
    from boothgate.settings import get_settings

    password = args.password
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    settings = get_settings()
    try:
        new = asyncio.run(reset(settings, password))
    except PasswordRefused as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    print(f"Admin login: {settings.admin_user} / {new}" if password is None else "The admin password is changed.")
    print("Restart boothgate for it to take effect (sudo systemctl restart boothgate, or stop and start it).")
    return EXIT_OK


def install_service(args: argparse.Namespace) -> int:
    """Write a systemd unit for this checkout (or print it with --print)."""
    from boothgate.ops.service import DEFAULT_UNIT_PATH, NEXT_STEPS, default_unit

    data_dir = Path(args.data_dir) if args.data_dir else None
    text = default_unit(Path(args.workdir) if args.workdir else None, args.user, data_dir)
    if args.print:
        print(text, end="")
        return EXIT_OK
    target = Path(args.output) if args.output else DEFAULT_UNIT_PATH
    try:
        target.write_text(text, encoding="utf-8")
    except PermissionError:
        print(f"Cannot write {target}: run it with sudo, or use --print and copy the unit there.", file=sys.stderr)
        return EXIT_FAILED
    print(f"Wrote {target}")
    if target.resolve().parent == DEFAULT_UNIT_PATH.parent:
        print(NEXT_STEPS)
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="boothgate", description="AI gateway for photobooths.")
    root.add_argument("--version", action="version", version=f"boothgate {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the server")
    serve_cmd.add_argument("--host", help="listen address (overrides BOOTHGATE_HOST)")
    serve_cmd.add_argument("--port", type=int, help="listen port (overrides BOOTHGATE_PORT)")
    serve_cmd.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve_cmd.set_defaults(handler=serve)
    migrate_cmd = commands.add_parser("migrate", help="bring the database schema up to date (before starting nodes)")
    migrate_cmd.set_defaults(handler=migrate)
    send_cmd = commands.add_parser("send", help="post a photo to an upload link exactly like DSLR Remote Pro")
    send_cmd.add_argument("url", help="the slot's upload link, e.g. http://host:8000/booth/gemini/1")
    send_cmd.add_argument("photo", help="path of a JPEG or PNG")
    send_cmd.add_argument("--password", help="the upload password (Statistics panel)")
    send_cmd.add_argument("--out", help="where to save the result (default: <photo>-result.jpg)")
    send_cmd.add_argument("--timeout", type=float, default=50.0, help="seconds to wait, like the booth (50)")
    send_cmd.set_defaults(handler=send)
    rehearse_cli.add_parser(commands)
    reset_cmd = commands.add_parser("reset-admin-password", help="set a new admin password (prints a generated one)")
    given = reset_cmd.add_mutually_exclusive_group()
    given.add_argument("--password", help="the new password (at least 8 characters) instead of a generated one")
    given.add_argument("--stdin", action="store_true", help="read the new password from the first line of stdin")
    reset_cmd.set_defaults(handler=reset_admin_password)
    service_cmd = commands.add_parser("install-service", help="write a systemd unit: start at boot, restart on crash")
    service_cmd.add_argument("--output", help="where to write it (default: /etc/systemd/system/boothgate.service)")
    service_cmd.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    service_cmd.add_argument("--user", help="the user it runs as (default: you)")
    service_cmd.add_argument("--workdir", help="working directory with .env (default: the current one)")
    service_cmd.add_argument("--data-dir", help="data folder (default: <workdir>/data)")
    service_cmd.set_defaults(handler=install_service)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result: int = args.handler(args)
    return result
