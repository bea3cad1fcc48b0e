"""Examples shipped with eventbus, so ``eventbus demo`` runs them from any installation.

- :mod:`eventbus.examples.orders_billing`: three services (orders, billing,
  notifications) on one bus; ``eventbus demo`` runs them as separate processes.

Read them as examples: nothing in :mod:`eventbus` imports them.
"""
