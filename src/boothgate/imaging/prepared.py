"""A prepared image: the one type image work hands back across the worker-process boundary.

Kept in a module of its own with no imports, so an image worker process (which unpickles and builds these)
does not load the provider layer (httpx, pydantic: ~2 s and ~15 MB per worker). `providers.base`
re-exports it as part of the provider contract.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send: already oriented, downscaled and encoded."""

    data: bytes
    mime: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height
