"""`boothgate reset-admin-password`: a new admin password for a lost one, written straight to the database.

The running server reads the stored hash at start, so it is restarted afterwards (the command says so).
"""

from __future__ import annotations

from boothgate.operator.credentials import ADMIN_HASH_KEY, generate_password, hash_password
from boothgate.settings import Settings
from boothgate.storage.db import Database
from boothgate.storage.models import StoredSetting, utcnow

MIN_LENGTH = 8


class PasswordRefused(ValueError):
    """The new password cannot be used (too short, or the environment sets one that would win)."""


async def reset_admin_password(settings: Settings, password: str | None = None) -> str:
    """Store the hash of `password` (or of a generated one) as the admin password; returns the password."""
    if settings.admin_password is not None:
        raise PasswordRefused(
            "BOOTHGATE_ADMIN_PASSWORD is set (environment or .env) and always wins; change it there instead."
        )
    if password is not None and len(password) < MIN_LENGTH:
        raise PasswordRefused(f"The password must have at least {MIN_LENGTH} characters.")
    new = password if password is not None else generate_password()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.sqlalchemy_url)
    try:
        await db.migrate()
        async with db.write() as session:
            row = await session.get(StoredSetting, ADMIN_HASH_KEY)
            if row is None:
                session.add(StoredSetting(key=ADMIN_HASH_KEY, value=hash_password(new)))
            else:
                row.value, row.updated_at = hash_password(new), utcnow()
    finally:
        await db.engine.dispose()
    return new
