"""Persistence: SQLAlchemy models, engine/session factory and repositories."""
