"""The kafka adapter (being built)."""
