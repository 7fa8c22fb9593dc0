"""`boothgate rehearse`: run a photo through every enabled slot of the running server, for real.

It asks the running server (the JSON API, as the admin) rather than starting a second one on the same
data: the rehearsal then meets exactly what guests will meet, and its jobs sit in the server's job list.
Prints the plan (paid calls, estimated cost), asks before spending, then one line per slot as each
finishes. Exit status: 0 all slots worked, 1 at least one failed, 2 nothing ran (usage, connection).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from boothgate.booth import rehearsal

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
POLL_SECONDS = 0.5


def add_parser(commands: Any) -> None:
    cmd = commands.add_parser("rehearse", help="run a photo through every enabled slot of the running server")
    cmd.add_argument("--tab", help="only this provider tab, e.g. gemini (default: all tabs)")
    cmd.add_argument("--photo", help="a JPEG/PNG of a person (default: the sample photo boothgate ships)")
    cmd.add_argument("--url", help="the running server (default: http://127.0.0.1:BOOTHGATE_PORT)")
    cmd.add_argument("--user", default=os.environ.get("BOOTHGATE_ADMIN_USER", "admin"), help="admin user name")
    cmd.add_argument("--password", help="admin password (default: BOOTHGATE_ADMIN_PASSWORD, else asked)")
    cmd.add_argument("--yes", action="store_true", help="do not ask before the paid calls")
    cmd.set_defaults(handler=rehearse)


def _money(value: float | None, plan: dict[str, Any] | None = None) -> str:
    """In the server's statistics currency (the plan says which), free when it costs nothing."""
    plan = plan or {}
    return rehearsal.money(value, str(plan.get("currency", "usd")), float(plan.get("rub_per_usd") or 0))


def _line(slot: dict[str, Any], plan: dict[str, Any] | None = None) -> str:
    name = f" «{slot['name']}»" if slot.get("name") else ""
    seconds = f"{slot['seconds']:.1f} s" if slot.get("seconds") is not None else "—"
    if slot["status"] == "succeeded":
        text = f"ok     {slot['slot']}{name}  {seconds}  {_money(slot.get('cost_usd'), plan)}"
    else:
        text = f"FAILED {slot['slot']}{name}  {seconds}  {slot.get('error')}: {slot.get('message')}"
    if slot.get("warning"):
        text += f"\n       warning: {slot['warning']}"
    return text


def rehearse(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    url = (args.url or f"http://127.0.0.1:{os.environ.get('BOOTHGATE_PORT', '8000')}").rstrip("/")
    password = args.password or os.environ.get("BOOTHGATE_ADMIN_PASSWORD") or ""
    if not password and sys.stdin.isatty():
        password = getpass.getpass(f"Admin password for {args.user}: ")
    files: dict[str, Any] = {}
    if args.photo:
        path = Path(args.photo)
        if not path.is_file():
            print(f"No such photo: {path}", file=out)
            return EXIT_USAGE
        files["photo"] = (path.name, path.read_bytes(), "application/octet-stream")
    params = {"tab": args.tab} if args.tab else {}
    try:
        with httpx.Client(base_url=url, auth=(args.user, password), timeout=30) as client:
            plan = client.get("/api/rehearsals/plan", params=params)
            if plan.status_code != 200:
                print(f"The server refused the plan (HTTP {plan.status_code}): {_detail(plan)}", file=out)
                return EXIT_USAGE
            planned = plan.json()
            if not _confirm(planned, args, out):
                return EXIT_USAGE
            started = client.post("/api/rehearsals", data=params, files=files or None)
            if started.status_code != 202:
                print(f"The rehearsal did not start (HTTP {started.status_code}): {_detail(started)}", file=out)
                return EXIT_USAGE
            run = _follow(client, started.json()["id"], out, planned)
    except httpx.HTTPError as exc:
        print(f"Could not reach boothgate at {url} ({type(exc).__name__}). Is `boothgate serve` running?", file=out)
        return EXIT_USAGE
    failed = int(run["failed"])
    total = len(run["slots"])
    spent = sum(s.get("cost_usd") or 0.0 for s in run["slots"])
    spent_text = "nothing was spent" if spent == 0 else f"spent about {_money(spent, planned)}"
    print(f"{total - failed} of {total} slots worked, {failed} failed; {spent_text}.", file=out)
    return EXIT_FAILED if failed else EXIT_OK


def _confirm(plan: dict[str, Any], args: argparse.Namespace, out: TextIO) -> bool:
    calls = int(plan.get("calls", plan["paid_calls"]))
    paid = int(plan["paid_calls"])
    if not calls:
        print("No enabled slot to rehearse.", file=out)
        return False
    if not paid:
        print(f"Rehearsal: {calls} slot{'s' * (calls != 1)}, all free (the offline tab): no money is spent.", file=out)
        return True  # nothing to confirm: a free run spends nothing
    unknown = f" (+{plan['unknown_costs']} slots of unknown cost)" if plan.get("unknown_costs") else ""
    free = f" and {plan['free_calls']} free" if plan.get("free_calls") else ""
    print(
        f"Rehearsal: {paid} paid call{'s' * (paid != 1)}{free}, estimated "
        f"{_money(plan['estimated_cost_usd'], plan)}{unknown}.",
        file=out,
    )
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print("Not asking without a terminal: add --yes to go on.", file=out)
        return False
    return input("Go on? [y/N] ").strip().lower() in ("y", "yes", "д", "да")


def _follow(client: httpx.Client, run_id: str, out: TextIO, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print each slot's line as it finishes; return the finished run."""
    printed: set[str] = set()
    while True:
        response = client.get(f"/api/rehearsals/{run_id}")
        response.raise_for_status()
        run: dict[str, Any] = response.json()
        for slot in run["slots"]:
            if slot["status"] in ("succeeded", "failed") and slot["slot"] not in printed:
                printed.add(slot["slot"])
                print(_line(slot, plan), file=out, flush=True)
        if run["done"]:
            return run
        time.sleep(POLL_SECONDS)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail") or response.json().get("message"))
    except ValueError:
        return response.text[:200]
