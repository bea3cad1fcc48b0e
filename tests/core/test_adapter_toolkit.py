"""The adapter authors' toolkit (``eventbus.adapter``): settings, plugin helper, errors,
lease renewal, the loop thread, receive-path constructors and the tooling Protocols."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import SplitResult

import pytest

from eventbus import (
    AdapterNotFound,
    BrokerError,
    BrokerUnavailable,
    ClosedError,
    ConfigError,
    MemoryAdapter,
    PublishError,
    SqliteAdapter,
)
from eventbus.adapter import (
    DeadLetterTools,
    Delivery,
    EventLog,
    GroupAdmin,
    LeaseRenewer,
    LoopThread,
    Message,
    Settings,
    adapter_spec,
    lazy_exports,
    make_delivery,
    make_message,
    require,
    translate_errors,
)
from eventbus.testing import eventually


@dataclass(frozen=True, repr=False)
class DemoSettings(Settings):
    adapter: ClassVar[str] = "demo"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token", "client"})

    url: str = "demo://localhost"
    host: str = "localhost"
    port: int = 1234
    create: bool = True
    lease: float = field(default=30.0, metadata={"expects": "a number of seconds"})
    region: str | None = "eu"
    mode: Literal["sns", "sqs"] = "sns"
    hosts: tuple[str, ...] = ()
    token: str | None = None
    client: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def url_fields(cls, url: SplitResult) -> dict[str, Any]:
        out: dict[str, Any] = {"url": url.geturl()}
        if "," in url.netloc:  # a list of hosts: kept in the URL
            return out
        if url.hostname:
            out["host"] = url.hostname
        if url.port:
            out["port"] = url.port
        return out

    def validate(self) -> None:
        if self.lease <= 0:
            raise ConfigError("demo: option 'lease' must be > 0")


# -- Settings ------------------------------------------------------------------------------
def test_values_come_from_defaults_then_url_then_query_then_options() -> None:
    s = DemoSettings.from_url("demo://h1:99?port=100&create=no", {"port": 101})
    assert (s.host, s.port, s.create) == ("h1", 101, False)
    assert DemoSettings.from_url(None).port == 1234


@pytest.mark.parametrize(
    "word,value",
    [("1", True), ("YES", True), ("on", True), ("false", False), ("Off", False), ("0", False)],
)
def test_bool_words_are_the_same_everywhere(word: str, value: bool) -> None:
    assert DemoSettings.from_url(f"demo://h?create={word}").create is value
    assert DemoSettings.from_url("demo://h", {"create": value}).create is value


def test_an_empty_value_keeps_the_default_and_none_clears_an_optional_field() -> None:
    s = DemoSettings.from_url("demo://h?create=&port=&region=none")
    assert (s.create, s.port, s.region) == (True, 1234, None)
    with pytest.raises(ConfigError, match="'port' needs a value"):
        DemoSettings.from_url("demo://h", {"port": None})


def test_types_are_coerced_or_refused_with_the_key_and_the_expected_type() -> None:
    s = DemoSettings.from_url("demo://h?lease=2.5&hosts=a, b,,c&mode=sqs", {"client": {"x": 1}})
    assert (s.lease, s.hosts, s.mode, s.client) == (2.5, ("a", "b", "c"), "sqs", {"x": 1})
    for query, needle in [
        ("create=maybe", "URL query parameter 'create' must be true or false, not 'maybe'"),
        ("port=80.5", "'port' must be a whole number"),
        ("lease=soon", "'lease' must be a number of seconds, not 'soon'"),
        ("mode=kafka", "'mode' must be one of 'sns', 'sqs'"),
        ("client=x", "'client' must be a table"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            DemoSettings.from_url(f"demo://h?{query}")
    with pytest.raises(ConfigError, match="option 'port' must be a whole number, not True"):
        DemoSettings.from_url("demo://h", {"port": True})


def test_unknown_keys_are_refused_with_the_closest_known_one() -> None:
    with pytest.raises(ConfigError, match=r"demo: unknown URL query parameter 'bogus'; known: "):
        DemoSettings.from_url("demo://h?bogus=1")
    with pytest.raises(ConfigError, match=r"demo: unknown option 'craete'; did you mean 'create'"):
        DemoSettings.from_url("demo://h", {"craete": True})


def test_a_url_with_a_bad_port_is_a_config_error_and_validate_runs() -> None:
    with pytest.raises(ConfigError, match="demo: broker URL is not valid"):
        DemoSettings.from_url("demo://u:p@host:notaport/")
    with pytest.raises(ConfigError, match="demo: broker URL is not valid"):
        DemoSettings.from_url("demo://u:p@[::1/")
    with pytest.raises(ConfigError, match="must be > 0"):
        DemoSettings.from_url("demo://h?lease=0")
    # a list of hosts is the adapter's to read (Kafka's bootstrap servers)
    assert DemoSettings.from_url("demo://b1:9092,b2:9092").url == "demo://b1:9092,b2:9092"


def test_repr_masks_secret_fields_and_url_passwords() -> None:
    secret = "S3cr3t-Zq9"
    s = DemoSettings.from_url(
        f"demo://user:{secret}@h/", {"token": secret, "client": {"sasl.password": secret}}
    )
    shown = repr(s)
    assert secret not in shown
    assert "token=***" in shown and "client=***" in shown and "user:" in shown


# -- the plugin helper ---------------------------------------------------------------------
@pytest.fixture
def plugin_package(tmp_path, monkeypatch) -> str:
    """A throwaway adapter package whose adapter module needs an SDK that is not installed."""
    pkg = tmp_path / "eb_demo_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "_adapter.py").write_text(
        "from eventbus.adapter import require\n"
        "require('eb_no_such_sdk', 'demo', hint='pip install eb-demo')\n"
        "class DemoAdapter:\n    def __init__(self, settings):\n        self.settings = settings\n"
    )
    (pkg / "_ok.py").write_text(
        "class OkAdapter:\n    def __init__(self, settings):\n        self.settings = settings\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "eb_demo_plugin"
    for name in [m for m in sys.modules if m.startswith("eb_demo_plugin")]:
        del sys.modules[name]


def test_adapter_spec_reads_settings_before_the_sdk_loads(plugin_package: str) -> None:
    spec = adapter_spec(
        name="demo",
        settings=DemoSettings,
        adapter="._adapter:DemoAdapter",
        package=plugin_package,
        schemes=("demo",),
    )
    with pytest.raises(ConfigError, match="unknown option 'nope'"):
        spec.factory("demo://h", {"nope": 1})
    assert f"{plugin_package}._adapter" not in sys.modules
    with pytest.raises(AdapterNotFound, match="pip install eb-demo"):
        spec.factory("demo://h", {})
    ok = adapter_spec(
        name="ok", settings=DemoSettings, adapter="._ok:OkAdapter", package=plugin_package
    )
    built: Any = ok.factory("demo://h:7", {})
    assert built.settings.port == 7
    assert ok.version  # from the distribution, or eventbus's own


def test_lazy_exports_import_on_first_use(plugin_package: str) -> None:
    getter = lazy_exports(plugin_package, {"OkAdapter": "._ok"})
    assert f"{plugin_package}._ok" not in sys.modules
    assert getter("OkAdapter").__name__ == "OkAdapter"
    with pytest.raises(AttributeError, match="no attribute 'Other'"):
        getter("Other")


def test_require_names_the_extra_or_the_given_hint() -> None:
    assert require("json", "demo") is sys.modules["json"]
    with pytest.raises(AdapterNotFound, match=r"pip install 'eventbus\[kafka\]'"):
        require("eb_no_such_sdk", "kafka", "kafka")
    with pytest.raises(AdapterNotFound, match="pip install eb-nats"):
        require("eb_no_such_sdk", "nats", hint="pip install eb-nats")


# -- translate_errors ----------------------------------------------------------------------
class SdkDown(Exception):
    pass


class SdkOther(Exception):
    pass


def test_translate_errors_maps_sdk_exceptions_and_keeps_the_cause() -> None:
    with pytest.raises(BrokerUnavailable, match="publishing: SdkDown: refused") as down:
        with translate_errors("publishing", unavailable=(SdkDown,), error=PublishError):
            raise SdkDown("refused")
    assert isinstance(down.value.__cause__, SdkDown)
    with pytest.raises(PublishError, match="SdkOther") as other:
        with translate_errors("publishing", unavailable=(SdkDown,), error=PublishError):
            raise SdkOther("x")
    assert isinstance(other.value.__cause__, SdkOther)
    with pytest.raises(ClosedError):  # our own errors pass through
        with translate_errors("publishing"):
            raise ClosedError("closed")
    with pytest.raises(KeyError):  # outside ``sdk``: not ours to translate
        with translate_errors("x", sdk=(SdkOther,)):
            raise KeyError("k")


def test_translate_errors_masks_credentials_in_the_message() -> None:
    with pytest.raises(BrokerError) as err:
        with translate_errors("connecting"):
            raise SdkOther("cannot reach amqp://user:Hunter2x@host:5672/")
    assert "Hunter2x" not in str(err.value)


# -- LeaseRenewer --------------------------------------------------------------------------
def test_lease_renewer_renews_what_is_held_until_released_or_past_the_limit() -> None:
    seen: list[list[Any]] = []
    renewer = LeaseRenewer(lambda handles: seen.append(sorted(handles)), period=0.05, limit=0.6)
    try:
        renewer.hold(1, "a")
        renewer.hold(2, "b")
        eventually(lambda: ["a", "b"] in seen, timeout=5)
        renewer.release(1)
        seen.clear()
        eventually(lambda: ["b"] in seen, timeout=5)
        assert all("a" not in batch for batch in seen)
        time.sleep(0.7)  # past the limit: "b" is no longer renewed
        assert renewer.due() == [] and renewer.held() == 1
    finally:
        renewer.close()
    assert renewer.held() == 0


def test_lease_renewer_survives_a_failing_renewal() -> None:
    calls: list[int] = []

    def renew(handles: Any) -> None:
        calls.append(len(handles))
        raise RuntimeError("lost")

    renewer = LeaseRenewer(renew, period=0.05)
    renewer.hold("k", object())
    try:
        eventually(lambda: len(calls) >= 3, timeout=5)
    finally:
        renewer.close()
    assert not any(t.name == "eventbus-lease-renewer" for t in threading.enumerate())


# -- LoopThread ----------------------------------------------------------------------------
def test_loop_thread_runs_coroutines_and_raises_their_errors() -> None:
    loop = LoopThread("eventbus-test-loop")

    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def fail() -> None:
        raise SdkOther("boom")

    try:
        assert loop.run(add(1, 2), timeout=5) == 3
        with pytest.raises(SdkOther):
            loop.run(fail(), timeout=5)
        with pytest.raises(BrokerUnavailable, match=r"within 0\.05 s"):
            loop.run(asyncio.sleep(5), timeout=0.05)
    finally:
        loop.close()
    with pytest.raises(ClosedError):
        loop.run(add(1, 1))
    loop.close()  # idempotent


# -- receive-path constructors and the Protocols -------------------------------------------
def test_make_message_and_make_delivery_equal_the_constructors() -> None:
    m = make_message("order.created", b"{}", {"id": "1"}, "k")
    assert m == Message("order.created", b"{}", {"id": "1"}, "k")
    assert make_delivery(m, 3, "h") == Delivery(m, 3, "h")
    assert make_delivery(m) == Delivery(m)


def test_tooling_is_declared_by_implementing_a_protocol(tmp_path) -> None:
    memory = MemoryAdapter()
    sqlite = SqliteAdapter(tmp_path / "bus.db")
    try:
        assert isinstance(memory, DeadLetterTools) and isinstance(memory, GroupAdmin)
        assert not isinstance(memory, EventLog)
        assert isinstance(sqlite, EventLog) and isinstance(sqlite, DeadLetterTools)
        assert not isinstance(types.SimpleNamespace(), DeadLetterTools)
    finally:
        memory.close()
        sqlite.close()
