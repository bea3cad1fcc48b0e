"""KafkaSettings from URLs and options; the plugin entry; lazy SDK import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eventbus_kafka import CAPABILITIES, KafkaSettings

from eventbus import ConfigError, find_spec

pytestmark = pytest.mark.kafka


def test_url_and_options() -> None:
    s = KafkaSettings.from_url(
        "kafka://b1:9092,b2:9092?prefix=shop.&partitions=6&create_topics=false"
        "&security.protocol=SASL_SSL",
        {"session_timeout": 12, "client": {"sasl.mechanism": "PLAIN"}},
    )
    assert s.bootstrap_servers == "b1:9092,b2:9092"
    assert (s.prefix, s.partitions, s.create_topics, s.session_timeout) == ("shop.", 6, False, 12.0)
    assert s.client == {"sasl.mechanism": "PLAIN", "security.protocol": "SASL_SSL"}


def test_options_win_over_the_query() -> None:
    s = KafkaSettings.from_url("kafka://h:1?partitions=2", {"partitions": 3})
    assert s.partitions == 3


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("amqp://h", {}, "kafka://"),
        ("kafka://h?partition=3", {}, "did you mean 'partitions'"),
        ("kafka://h?partitions=many", {}, "must be a whole number"),
        ("kafka://h?start=latest", {}, "start.*must be one of"),
        ("kafka://h?prefix=a b", {}, "prefix"),
        ("kafka://h", {"session_timeout": 20, "max_poll_interval": 10}, "max_poll_interval"),
        ("kafka://h?create_topics=maybe", {}, "true or false"),
        ("kafka://h?marks_ahead=-1", {}, "marks_ahead must be >= 0"),
    ],
)
def test_bad_settings_say_what_to_fix(url: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KafkaSettings.from_url(url, options)


@pytest.mark.parametrize("url", ["kafka://", "kafka:///", "kafka://?prefix=a.", "kafka://user@"])
def test_a_url_without_a_host_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="names no broker") as info:
        KafkaSettings.from_url(url)
    assert "\n" not in str(info.value)
    # unless the option names the brokers
    s = KafkaSettings.from_url(url, {"bootstrap_servers": "b1:9092"})
    assert s.bootstrap_servers == "b1:9092"


def test_a_url_without_a_host_exits_2_in_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "eventbus.toml"
    config.write_text('url = "kafka://"\n')
    code = "import sys; from eventbus.cli import main; sys.exit(main(sys.argv[1:]))"
    out = subprocess.run(
        [sys.executable, "-c", code, "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "names no broker" in out.stderr and "Traceback" not in out.stderr


def test_capabilities_follow_the_settings() -> None:
    s = KafkaSettings(session_timeout=5, max_poll_interval=20, max_message_size=2_000_000)
    caps = s.capabilities
    assert caps.lease_seconds == 25
    assert caps.max_message_size == 2_000_000
    assert not caps.replay and KafkaSettings(start="earliest").capabilities.replay
    assert caps.ordering_per_key and caps.consumer_groups and caps.redelivery
    assert CAPABILITIES.cross_process


def test_plugin_is_found_by_name_and_scheme() -> None:
    spec = find_spec("kafka")
    assert spec.schemes == ("kafka",) and spec.extra == "kafka" and spec.sdk_installed()
    assert find_spec("kafka") is spec


def test_importing_the_plugin_does_not_import_the_sdk() -> None:
    code = "import sys, eventbus_kafka; print('confluent_kafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
