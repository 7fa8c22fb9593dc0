"""`python -m tests.fakes.crash_app`: boothgate as `boothgate serve` runs it — settings from the
BOOTHGATE_* environment (the Gemini tab pointed at the test's Gemini wire fake by BOOTHGATE_GEMINI_BASE_URL),
the CLI's logging and uvicorn options, the built-in provider modules. For tests that must kill a real server
process (SIGKILL) and start it again."""

from __future__ import annotations

import uvicorn

from boothgate.cli.main import configure_logging
from boothgate.settings import get_settings
from boothgate.web.app import create_app
from boothgate.web.server import uvicorn_options


def main() -> None:
    settings = get_settings()
    configure_logging("info")
    app = create_app(settings, {})
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="info", **uvicorn_options(settings))


if __name__ == "__main__":
    main()
