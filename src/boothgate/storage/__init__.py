"""Storage: the database (SQLAlchemy 2 + Alembic), the settings saved from the settings page (`config`)
and the media folders.

May import `imaging/` (to know an image's type from its bytes) and the base modules.
"""
