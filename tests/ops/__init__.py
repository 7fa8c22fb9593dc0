"""Running it: setup, the command line, Caddy, the docs and the bench harness (ops/, cli/)."""
