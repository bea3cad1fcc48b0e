"""Settings of the Service Bus adapter, its capabilities and limits (no SDK import).

URLs (schemes ``azure-servicebus``, ``servicebus``, ``sb``)::

    sb://<namespace>.servicebus.windows.net/<topic>?SharedAccessKeyName=...&SharedAccessKey=...
    sb://<namespace>.servicebus.windows.net/<topic>?credential=default
    sb://127.0.0.1:5672/eventbus?UseDevelopmentEmulator=true&entities=existing

The URL's host is the namespace, its path the topic; the query takes the
connection-string keys (``SharedAccessKeyName``, ``SharedAccessKey``,
``SharedAccessSignature``, ``UseDevelopmentEmulator``, spelled as Service Bus
spells them) and every option below. ``connection_string`` (an option) wins
over the URL's host and keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import SplitResult, unquote

from eventbus import ConfigError
from eventbus.adapter import Capabilities, Settings

__all__ = [
    "BATCH_CAP",
    "CAPABILITIES",
    "DEFAULT_URL",
    "ENCODING_MARGIN",
    "STANDARD_MAX_MESSAGE",
    "ServiceBusSettings",
]

#: Room left under the link's max message size for the AMQP encoding of a message.
ENCODING_MARGIN = 4096
#: Standard tier's limit; Premium takes up to 100 MB (``max_message_size=``).
STANDARD_MAX_MESSAGE = 256 * 1024
#: Service Bus caps a batch at 1 MB on every tier (Premium's larger messages go alone).
BATCH_CAP = 1024 * 1024
#: No default: a namespace (and its credentials) must be named.
DEFAULT_URL: str | None = None

CAPABILITIES = Capabilities(
    ordering_per_key=False,
    consumer_groups=True,
    persistence=True,
    replay=False,
    redelivery=True,
    native_dead_letter=True,
    delayed_delivery=True,
    max_message_size=STANDARD_MAX_MESSAGE - ENCODING_MARGIN,
    batching=True,
    dedup=False,
    lease_seconds=30.0,
    cross_process=True,
)

_CONNECTION_KEYS = (
    "SharedAccessKeyName",
    "SharedAccessKey",
    "SharedAccessSignature",
    "UseDevelopmentEmulator",
)


@dataclass(frozen=True, repr=False)
class ServiceBusSettings(Settings):
    """How to reach the namespace and how the bus maps onto it.

    ``connection_string``: the namespace's (``Endpoint=sb://...;SharedAccessKeyName=...;
    SharedAccessKey=...``; ``UseDevelopmentEmulator=true`` for the emulator or
    a test broker). Or ``fully_qualified_namespace`` (the URL's host) with
    ``credential``: ``"default"`` (``azure.identity.DefaultAzureCredential``,
    extra ``azure-identity``) or, from code, any azure-identity token
    credential object (Entra ID; namespaces with local auth disabled need it).
    ``entities``: ``"create"`` (administration client), ``"existing"``, or,
    from code, an :class:`~eventbus_azure_servicebus.Entities` object.
    ``lock_duration`` and ``max_delivery_count`` apply to subscriptions the
    adapter creates. ``lock_renewal``: renew a delivery's lock for at most this
    many seconds while its handler runs (0: never). ``sessions``: per-key order
    through sessions; ``max_sessions``: sessions one consumer holds at a time.
    ``retry_total`` / ``retry_backoff_max``: the SDK's retries of one operation
    and the longest pause between them (seconds); they bound how long one call,
    and so a worker's stop, can take with the namespace down (about 4 s by default).
    ``client_kwargs``: more keyword arguments for the SDK's ``ServiceBusClient``.
    """

    adapter: ClassVar[str] = "azure_servicebus"
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"connection_string", "SharedAccessKey", "SharedAccessSignature", "credential"}
    )

    connection_string: str = ""
    fully_qualified_namespace: str = ""
    credential: Any = None
    topic: str = "eventbus"
    entities: Any = "create"
    lock_duration: float = 30.0
    max_delivery_count: int = 10
    max_message_size: int = STANDARD_MAX_MESSAGE
    lock_renewal: float = 300.0
    sessions: bool = False
    max_sessions: int = 8
    retry_total: int = 3
    retry_backoff_max: float = 2.0
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    SharedAccessKeyName: str = ""
    SharedAccessKey: str = ""
    SharedAccessSignature: str = ""
    UseDevelopmentEmulator: bool = False

    @classmethod
    def url_fields(cls, url: SplitResult) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if url.hostname:
            out["fully_qualified_namespace"] = url.hostname + (f":{url.port}" if url.port else "")
        if url.path.strip("/"):
            out["topic"] = unquote(url.path.strip("/"))
        return out

    def __post_init__(self) -> None:
        # the URL's host and keys make the connection string, unless one was given
        if not self.connection_string and self.fully_qualified_namespace and not self.credential:
            keys = "".join(
                f"{k}={'true' if v is True else v};"
                for k in _CONNECTION_KEYS
                if (v := getattr(self, k))
            )
            conn = f"Endpoint=sb://{self.fully_qualified_namespace}/;{keys}"
            object.__setattr__(self, "connection_string", conn)

    def validate(self) -> None:
        if not self.connection_string and not (self.fully_qualified_namespace and self.credential):
            raise ConfigError(
                "azure_servicebus needs a connection string (option 'connection_string'), "
                "a URL like sb://<namespace>.servicebus.windows.net/<topic>?"
                "SharedAccessKeyName=...&SharedAccessKey=..., or a namespace with "
                'option credential = "default" (Entra ID)'
            )
        if not 0 < self.lock_duration <= 300:
            raise ConfigError(
                "azure_servicebus: option 'lock_duration' must be between 0 and 300 seconds "
                "(Service Bus: 5 min max)"
            )
        if self.max_sessions < 1:
            raise ConfigError("azure_servicebus: option 'max_sessions' must be at least 1")
        if self.retry_total < 0 or self.retry_backoff_max < 0:
            raise ConfigError(
                "azure_servicebus: options 'retry_total' and 'retry_backoff_max' must be >= 0"
            )
        if isinstance(self.entities, str) and self.entities not in ("create", "existing"):
            raise ConfigError(
                "azure_servicebus: option 'entities' must be 'create' or 'existing' "
                f"(or, from code, an Entities object), not {self.entities!r}"
            )
        if isinstance(self.credential, str) and self.credential != "default":
            raise ConfigError(
                "azure_servicebus: option 'credential' must be \"default\" "
                "(DefaultAzureCredential) or, from code, a token credential object"
            )
