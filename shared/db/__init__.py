"""Database access: models, engine, unit of work and migrations."""
