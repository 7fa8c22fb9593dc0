"""Images made from a prompt for a slot's reference (issue 28, seed 003's "generate"), kept until the
operator confirms or drops them. Bounded: a few drafts, each for a quarter of an hour, in memory."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_DRAFTS = 8
DRAFT_SECONDS = 15 * 60


@dataclass
class Draft:
    provider: str
    number: int
    data: bytes
    mime: str
    via: str
    cost_usd: float | None
    made_at: float = field(default_factory=time.monotonic)


class ReferenceDrafts:
    def __init__(self) -> None:
        self._drafts: OrderedDict[str, Draft] = OrderedDict()

    def _prune(self) -> None:
        now = time.monotonic()
        for token in [t for t, d in self._drafts.items() if now - d.made_at > DRAFT_SECONDS]:
            del self._drafts[token]
        while len(self._drafts) > MAX_DRAFTS:
            self._drafts.popitem(last=False)

    def put(self, draft: Draft) -> str:
        token = secrets.token_urlsafe(12)
        self._drafts[token] = draft
        self._prune()
        return token

    def get(self, token: str, provider: str, number: int) -> Draft | None:
        self._prune()
        draft = self._drafts.get(token)
        if draft is None or (draft.provider, draft.number) != (provider, number):
            return None
        return draft

    def take(self, token: str, provider: str, number: int) -> Draft | None:
        draft = self.get(token, provider, number)
        if draft is not None:
            del self._drafts[token]
        return draft
