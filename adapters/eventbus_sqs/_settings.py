"""Settings of the SQS adapter: one small typed record, read from a URL and options.

Nothing here imports boto3: the plugin module reads :data:`CAPABILITIES` and the
factory validates settings before the SDK is loaded. Values are read by
:meth:`eventbus.adapter.Settings.from_url` (the rules every adapter shares).

URL forms (options from the config's ``options`` table win over the query)::

    sqs://?region=eu-west-1                      real AWS, credentials from the boto3 chain
    sqs://?region=us-east-1&endpoint_url=http://127.0.0.1:4566    LocalStack, moto, ...
    sqs://127.0.0.1:4566?region=us-east-1        the same: host:port is the endpoint (http)
    sqs://?mode=sqs&prefix=shop-&fifo=true       no SNS; FIFO queues

Credentials never go in the URL (a URL with a user or password is refused, so it
can't end up in a log): boto3 finds them in the environment, the shared
credentials file (``profile=``), or the instance/task role.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import SplitResult

from eventbus import ConfigError
from eventbus.adapter import Capabilities, Settings

__all__ = ["CAPABILITIES", "DEFAULT_URL", "MAX_MESSAGE_SIZE", "SqsSettings"]

DEFAULT_URL = "sqs://"
#: SQS's and SNS's limit on one message: body plus every attribute's name, type and value.
MAX_MESSAGE_SIZE = 256 * 1024
#: Longest visibility timeout SQS accepts (12 hours).
MAX_VISIBILITY = 43_200
_MAX_QUEUE_NAME = 80
_DLQ_SUFFIX = "-dlq"

CAPABILITIES = Capabilities(
    ordering_per_key=False,  # standard queues; FIFO mode declares True
    consumer_groups=True,  # a queue per group; SNS (or the publisher) fans out
    persistence=True,  # SQS stores messages redundantly until deleted or expired
    replay=False,  # a deleted message is gone
    redelivery=True,  # visibility timeout
    native_dead_letter=True,  # a DLQ per group, with an SQS redrive policy behind it
    delayed_delivery=True,  # nack(delay) = ChangeMessageVisibility(delay)
    max_message_size=MAX_MESSAGE_SIZE,
    max_header_count=None,  # attributes are packed into one SQS attribute (see _codec)
    max_header_size=None,  # only the message's total size is limited
    batching=True,  # SNS PublishBatch / SendMessageBatch, DeleteMessageBatch: 10 a call
    dedup=False,  # FIFO mode declares True (dedup id = event id, 5 minutes)
    lease_seconds=30.0,
    cross_process=True,
)


@dataclass(frozen=True, repr=False)
class SqsSettings(Settings):
    """Where the queues are and how the adapter lays them out.

    - ``region``: AWS region; ``None``: boto3's own (``AWS_REGION``, profile, ...).
    - ``endpoint_url``: another endpoint than AWS's (LocalStack, moto, ElasticMQ).
    - ``profile``: a named profile of the shared AWS config/credentials files.
    - ``mode``: ``"sns"`` (default): events go to one SNS topic, each group's queue
      is subscribed with a filter policy; ``"sqs"``: no SNS, the publisher sends each
      event straight to the queue of every group whose patterns match (groups
      advertise their patterns in queue tags; see ``docs/adapters/sqs.md``).
    - ``topic``: the SNS topic's name (``.fifo`` is added in FIFO mode);
      ``topic_arn`` names an existing topic instead.
    - ``prefix``: prepended to group names to name their queues.
    - ``fifo``: FIFO topic and queues: per-key order (message group id = key) and
      dedup by event id.
    - ``create``: create the topic, queues and subscriptions on demand (default);
      ``false``: they must exist (made by CloudFormation/Terraform) and are only checked.
    - ``lease``: visibility timeout in seconds; the lease renewer extends it while a
      handler runs, so it is the time a crashed consumer's events wait.
    - ``max_receive_count``: the redrive policy's limit; SQS moves a message to the
      group's DLQ after that many receives. A safety net behind the worker's own
      retry policy, so keep it above ``retry.max_attempts``.
    - ``long_poll``: longest ``WaitTimeSeconds`` of one receive (0-20).
    - ``refresh``: ``mode=sqs`` only: seconds a publisher trusts its list of groups.
    - ``connect_timeout``: seconds to open a connection to the endpoint (also about
      the longest a stop waits for a receive while the endpoint is down).
    - ``max_attempts``: botocore's attempts per call (its retry with backoff);
      receives, lease renewals and hand-backs make one attempt (the worker retries).
    """

    adapter: ClassVar[str] = "sqs adapter"

    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    mode: Literal["sns", "sqs"] = "sns"
    topic: str = "eventbus"
    topic_arn: str | None = None
    prefix: str = "eventbus-"
    fifo: bool = False
    create: bool = True
    lease: float = 30.0
    max_receive_count: int = 10
    long_poll: int = 20
    refresh: float = 5.0
    connect_timeout: float = 5.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        self.validate()  # also when made directly, not only by from_url

    @classmethod
    def url_fields(cls, url: SplitResult) -> dict[str, Any]:
        """``sqs://host:port``: the endpoint (plain http); credentials are refused."""
        if url.scheme and url.scheme.lower() != "sqs":
            raise ConfigError(f"{cls.adapter}: URL scheme must be 'sqs', not {url.scheme!r}")
        if url.username or url.password:
            raise ConfigError(
                f"{cls.adapter}: don't put credentials in the URL; boto3 reads them from "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile (profile=...) or a role"
            )
        if url.hostname:
            port = f":{url.port}" if url.port else ""
            return {"endpoint_url": f"http://{url.hostname}{port}"}
        return {}

    def validate(self) -> None:
        if self.mode not in ("sns", "sqs"):
            raise ConfigError(f"sqs adapter: mode must be 'sns' or 'sqs', not {self.mode!r}")
        if not 1 <= self.lease <= MAX_VISIBILITY:
            raise ConfigError(
                f"sqs adapter: lease must be 1 to {MAX_VISIBILITY} seconds, not {self.lease!r}"
            )
        if not 1 <= self.max_receive_count <= 1000:
            raise ConfigError("sqs adapter: max_receive_count must be 1 to 1000")
        if not 0 <= self.long_poll <= 20:
            raise ConfigError("sqs adapter: long_poll must be 0 to 20 seconds")
        if self.refresh < 0 or self.connect_timeout <= 0 or self.max_attempts < 1:
            raise ConfigError(
                "sqs adapter: refresh >= 0, connect_timeout > 0 and max_attempts >= 1 please"
            )
        if not re.fullmatch(r"[A-Za-z0-9_-]*", self.prefix) or len(self.prefix) > 40:
            raise ConfigError(
                f"sqs adapter: prefix {self.prefix!r} may use letters, digits, '-' and '_' "
                "(at most 40)"
            )
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,250}", self.topic):
            raise ConfigError(
                f"sqs adapter: topic {self.topic!r} may use letters, digits, '-' and '_' "
                "(without '.fifo', which fifo=true adds)"
            )

    # -- derived -------------------------------------------------------------------
    @property
    def visibility(self) -> int:
        """The lease as SQS takes it: whole seconds."""
        return max(1, math.ceil(self.lease))

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES.replace(
            lease_seconds=float(self.visibility),
            ordering_per_key=self.fifo,
            dedup=self.fifo,
        )

    @property
    def topic_name(self) -> str:
        return self.topic + (".fifo" if self.fifo else "")

    def queue_name(self, group: str) -> str:
        """The queue of ``group``: ``prefix + group``, made safe and unique if it must be.

        SQS names allow 80 letters, digits, ``-`` and ``_``. A group name that is
        not such a name (or would clash with a DLQ's) keeps its readable part and
        gets a hash of the real name, so two groups never share a queue.
        """
        fifo = ".fifo" if self.fifo else ""
        room = _MAX_QUEUE_NAME - len(fifo) - len(_DLQ_SUFFIX)
        base = self.prefix + group
        safe = re.sub(r"[^A-Za-z0-9_-]", "-", base)
        if safe != base or len(safe) > room or safe.endswith(_DLQ_SUFFIX) or not group:
            digest = hashlib.sha256(group.encode()).hexdigest()[:10]
            safe = f"{safe[: room - 11]}-{digest}"
        return safe + fifo

    def dlq_name(self, group: str) -> str:
        name = self.queue_name(group)
        if self.fifo:
            return name[: -len(".fifo")] + _DLQ_SUFFIX + ".fifo"
        return name + _DLQ_SUFFIX

    def is_dlq_name(self, name: str) -> bool:
        return name.removesuffix(".fifo").endswith(_DLQ_SUFFIX)
