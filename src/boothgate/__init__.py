"""boothgate: a self-hosted AI gateway for photobooths."""

__version__ = "0.1.0"
