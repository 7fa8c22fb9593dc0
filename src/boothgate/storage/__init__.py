"""Storage: the database (SQLAlchemy 2 + Alembic) and the media folders."""
