"""The browser tests here share the one Chromium fixture of tests/web."""

from tests.web.conftest import browser  # noqa: F401  (the fixture)
