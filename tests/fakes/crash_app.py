"""`python -m tests.fakes.crash_app`: boothgate as `boothgate serve` runs it — settings from the
BOOTHGATE_* environment, the CLI's logging and uvicorn options — but with the scripted provider on the
gemini tab. For tests that must kill a real server process (SIGKILL) and start it again."""

from __future__ import annotations

import uvicorn

from boothgate.cli.main import configure_logging
from boothgate.settings import get_settings
from boothgate.web.app import create_app
from boothgate.web.server import uvicorn_options
from tests.conftest import ScriptedProvider


def main() -> None:
    settings = get_settings()
    configure_logging("info")
    app = create_app(settings, {"gemini": ScriptedProvider})
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="info", **uvicorn_options(settings))


if __name__ == "__main__":
    main()
