"""The azure_servicebus adapter (being built)."""
