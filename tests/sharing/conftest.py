"""The browser tests here share the one Chromium fixture of tests/web, and one shape of server."""

from collections.abc import Iterator

import pytest

from tests.conftest import ScriptedProvider
from tests.web.conftest import (
    browser,  # noqa: F401  (the fixture)
    browser_server,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """boothgate for a module of guest-page browser tests: the scripted provider on the Gemini tab, its own
    address public (share links and QR codes point at it), and a deadline a loaded machine does not turn a
    slow job into a timed-out one with."""
    folder = tmp_path_factory.mktemp("share-ui")
    with browser_server(folder, {"gemini": ScriptedProvider}, public_url=True, deadline_seconds=30.0) as served:
        yield served.url
