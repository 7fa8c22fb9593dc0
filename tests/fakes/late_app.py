"""`python -m tests.fakes.late_app`: boothgate as `boothgate serve` runs it, with the real Gemini provider
(pointed at a loopback fake by BOOTHGATE_GEMINI_BASE_URL) and the offline tab's stand-in when the real
engine is not installed. For the late-result test that must SIGKILL a real server and start it again."""

from __future__ import annotations

import uvicorn

from boothgate.cli.main import configure_logging
from boothgate.settings import get_settings
from boothgate.web.app import create_app
from boothgate.web.server import uvicorn_options
from tests.fallback_support import local_classes


def main() -> None:
    settings = get_settings()
    configure_logging("info")
    app = create_app(settings, local_classes())
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="info", **uvicorn_options(settings))


if __name__ == "__main__":
    main()
