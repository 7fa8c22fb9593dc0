"""Our server as `boothgate serve` runs it, with the bench's fake provider on the gemini tab.

Run as `python -m bench.server --host 127.0.0.1 --port N`; settings come from the environment.
"""

from __future__ import annotations

from bench.provider import BenchProvider
from boothgate.cli.main import parser, serve


def main() -> int:
    import sys

    args = parser().parse_args(["serve", *sys.argv[1:]])
    return serve(args, registry_classes={"gemini": BenchProvider})


if __name__ == "__main__":
    raise SystemExit(main())
