"""History: SQLAlchemy models and the store."""
