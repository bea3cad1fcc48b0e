"""The sqs adapter (being built)."""
