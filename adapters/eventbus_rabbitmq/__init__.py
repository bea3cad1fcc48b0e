"""The rabbitmq adapter (being built)."""
