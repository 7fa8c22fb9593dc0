"""The admin API and UI, security headers, the loop watch, browser tests (src/boothgate/web/)."""
