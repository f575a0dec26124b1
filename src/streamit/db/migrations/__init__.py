"""Alembic migrations of the stream catalogue; run through :meth:`streamit.db.Database.upgrade`."""
