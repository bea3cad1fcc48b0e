"""SDK clients: the SDK import, and ``ServiceBusClient`` objects built from the settings.

A client is made from the connection string (SAS or the emulator) or from
``fully_qualified_namespace`` + an Entra ID token credential; either way with
bounded retries (``retry_total``, ``retry_backoff_max``) so that no call, and
so no worker's stop, waits on an unreachable namespace for minutes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from eventbus.adapter import require

from ._settings import ServiceBusSettings

__all__ = ["Clients", "Reachability", "sdk"]

log = logging.getLogger("eventbus.azure_servicebus")

#: The SDK's first pause between retries (it doubles, up to ``retry_backoff_max``).
RETRY_BACKOFF_FACTOR = 0.5


def sdk() -> Any:
    """``azure.servicebus``, or :class:`~eventbus.AdapterNotFound` with the install hint."""
    return require("azure.servicebus", "azure_servicebus", "azure-servicebus")


def credential_of(settings: ServiceBusSettings) -> Any:
    """The token credential the settings name (``"default"``: DefaultAzureCredential)."""
    cred = settings.credential
    if cred == "default":
        identity = require(
            "azure.identity",
            "azure_servicebus",
            "azure-identity",
            hint='credential = "default" needs azure-identity: '
            "pip install 'eventbus[azure-identity]'",
        )
        return identity.DefaultAzureCredential()
    return cred


class Reachability:
    """Whether the namespace answers, shared by an adapter and its consumers.

    :meth:`lost` logs one WARNING when calls start failing for want of the
    namespace, :meth:`back` one when a call succeeds again; in between the
    worker's retries stay quiet here. ``down`` is read without the lock (a bool).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.down = False
        self._lock = threading.Lock()

    def lost(self, exc: BaseException) -> None:
        with self._lock:
            if self.down:
                return
            self.down = True
        log.warning("Service Bus namespace %s is unreachable (%s); retrying", self.where, exc)

    def back(self) -> None:
        with self._lock:
            if not self.down:
                return
            self.down = False
        log.warning("Service Bus namespace %s is reachable again", self.where)


class Clients:
    """Makes the SDK clients of one adapter (thread-safe: it holds no connection)."""

    def __init__(self, settings: ServiceBusSettings) -> None:
        self.settings = settings
        self.sb = sdk()
        self._credential = credential_of(settings) if settings.credential else None
        self._kwargs: dict[str, Any] = {
            "retry_total": settings.retry_total,
            "retry_backoff_factor": RETRY_BACKOFF_FACTOR,
            "retry_backoff_max": settings.retry_backoff_max,
            **settings.client_kwargs,
        }
        where = settings.fully_qualified_namespace or _endpoint(settings.connection_string)
        self.reachability = Reachability(where)

    def client(self, **overrides: Any) -> Any:
        """A new ``ServiceBusClient`` (its own connection, opened on first use)."""
        kwargs = {**self._kwargs, **overrides}
        s = self.settings
        if self._credential is not None:
            if s.UseDevelopmentEmulator:
                kwargs.setdefault("use_tls", False)
            return self.sb.ServiceBusClient(s.fully_qualified_namespace, self._credential, **kwargs)
        return self.sb.ServiceBusClient.from_connection_string(s.connection_string, **kwargs)

    def administration(self) -> Any:
        """A ``ServiceBusAdministrationClient`` on the same namespace and credential."""
        from azure.servicebus.management import ServiceBusAdministrationClient

        s = self.settings
        if self._credential is not None:
            return ServiceBusAdministrationClient(s.fully_qualified_namespace, self._credential)
        return ServiceBusAdministrationClient.from_connection_string(s.connection_string)


def _endpoint(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            return value.strip().removeprefix("sb://").strip("/")
    return "?"
