"""The names of the headers eventbus itself adds to messages on a broker.

Every adapter that carries these facts in broker headers uses these names, so a
dead letter looks the same on every broker and tools (``eventbus dlq``, a
foreign consumer) read one set of names. CloudEvents attributes are not here:
they travel under their own names (with each broker's binding prefix).
"""

from __future__ import annotations

__all__ = ["H_ATTEMPT", "H_DUE", "H_FAILED_AT", "H_GROUP", "H_KEY", "H_REASON", "H_SIZE", "H_TOPIC"]

#: The delivery attempt a retry copy is, or a dead letter was (1 = first delivery).
H_ATTEMPT = "eventbus-attempt"
#: The event's topic (type), on a copy that sits on another topic or queue.
H_TOPIC = "eventbus-topic"
#: The ordering key, where the broker has no key of its own to carry it.
H_KEY = "eventbus-key"
#: Epoch milliseconds before which a retry copy is not to be handed out.
H_DUE = "eventbus-due"
#: Why the event was dead-lettered (the handler's error, a decode error, ...).
H_REASON = "eventbus-reason"
#: The group that dead-lettered it.
H_GROUP = "eventbus-group"
#: When it was dead-lettered (RFC 3339, UTC).
H_FAILED_AT = "eventbus-failed-at"
#: The original size in bytes, on a dead letter whose body had to be cut to fit.
H_SIZE = "eventbus-original-size"
