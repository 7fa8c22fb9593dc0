"""Effective settings at run time: environment wins, then values saved on the settings page, then defaults.

Listeners (the provider registry) are told when the effective settings change.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import SecretStr, ValidationError
from sqlalchemy import select

from boothgate.settings import RUNTIME_EDITABLE, Settings
from boothgate.storage.changes import Changes
from boothgate.storage.db import Database
from boothgate.storage.models import StoredSetting, utcnow

PREFIX = "setting."
Source = Literal["environment", "stored", "default"]


class SettingLockedError(ValueError):
    """The setting comes from the environment, which always wins."""


class RuntimeConfig:
    def __init__(self, base: Settings, db: Database) -> None:
        self.base = base
        self.db = db
        self.settings = base
        self._stored: dict[str, Any] = {}
        self._listeners: list[Callable[[Settings], Awaitable[None]]] = []
        self.changes: Changes | None = None  # several nodes: the others reload when this one saves

    def on_change(self, listener: Callable[[Settings], Awaitable[None]]) -> None:
        self._listeners.append(listener)

    def source(self, name: str) -> Source:
        if name in self.base.model_fields_set:
            return "environment"
        return "stored" if name in self._stored else "default"

    async def load(self) -> None:
        async with self.db.read() as session:
            rows = (await session.scalars(select(StoredSetting).where(StoredSetting.key.like(f"{PREFIX}%")))).all()
        stored = {row.key[len(PREFIX) :]: json.loads(row.value) for row in rows}
        self._stored = {k: v for k, v in stored.items() if k in RUNTIME_EDITABLE}
        self.settings = self._effective(self._stored)

    async def reload(self) -> None:
        """Another node saved settings: read them again and tell the listeners if the effective ones changed."""
        before = self.settings
        await self.load()
        if self.settings != before:
            for listener in self._listeners:
                await listener(self.settings)

    def _effective(self, stored: dict[str, Any]) -> Settings:
        usable = {k: v for k, v in stored.items() if k not in self.base.model_fields_set}
        if not usable:
            return self.base
        return Settings(**{**self.base.model_dump(), **usable})

    async def update(self, changes: dict[str, Any]) -> Settings:
        """Validate and store changes (None or "" on a secret = leave as is; None elsewhere = reset)."""
        unknown = [k for k in changes if k not in RUNTIME_EDITABLE]
        if unknown:
            raise ValueError(f"not editable here: {', '.join(unknown)}")
        locked = [k for k in changes if self.source(k) == "environment"]
        if locked:
            raise SettingLockedError(f"set in the environment: {', '.join(locked)}")
        stored = dict(self._stored)
        for key, value in changes.items():
            is_secret = Settings.model_fields[key].annotation in (SecretStr, SecretStr | None)
            if is_secret and value in (None, ""):
                continue
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        try:
            effective = self._effective(stored)
        except ValidationError:
            raise
        async with self.db.write() as session:
            for key in changes:
                row = await session.get(StoredSetting, PREFIX + key)
                if key in stored:
                    payload = json.dumps(stored[key])
                    if row is None:
                        session.add(StoredSetting(key=PREFIX + key, value=payload))
                    else:
                        row.value, row.updated_at = payload, utcnow()
                elif row is not None:
                    await session.delete(row)
            if self.changes is not None:
                await self.changes.publish(session, "settings")  # sent when this transaction commits
        self._stored = stored
        self.settings = effective
        for listener in self._listeners:
            await listener(effective)
        return effective
