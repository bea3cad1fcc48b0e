"""The embedded SQLite adapter (being built)."""
