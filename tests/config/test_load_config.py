"""load_config: where the config comes from, what overrides what, and what errors say."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus import BusConfig, ConfigError, RetryPolicy, load_config

DEFAULT_URL = "sqlite:///eventbus.db"  # the documented default broker (docs/configuration.md)

pytestmark = pytest.mark.memory


# -- where the config comes from ----------------------------------------------------


def test_nothing_configured_means_the_embedded_sqlite_broker() -> None:
    cfg = load_config()
    assert cfg.url == DEFAULT_URL == "sqlite:///eventbus.db"
    assert cfg.broker is None
    assert cfg.file is None
    assert cfg.profile is None
    assert cfg.retry == RetryPolicy()


def test_eventbus_toml_in_the_current_directory(write, workdir: Path) -> None:
    write("eventbus.toml", 'url = "memory://"\nsource = "//shop/orders"\n')
    cfg = load_config()
    assert cfg.url == "memory://"
    assert cfg.source == "//shop/orders"
    assert cfg.file == str(workdir / "eventbus.toml")


def test_tool_eventbus_table_in_pyproject(write) -> None:
    write(
        "pyproject.toml",
        """
        [project]
        name = "shop"

        [tool.eventbus]
        url = "memory://"

        [tool.eventbus.retry]
        max_attempts = 3
        """,
    )
    cfg = load_config()
    assert cfg.url == "memory://"
    assert cfg.retry.max_attempts == 3
    assert cfg.file is not None and cfg.file.endswith("pyproject.toml")


def test_pyproject_without_tool_eventbus_is_ignored(write) -> None:
    write("pyproject.toml", '[project]\nname = "shop"\n')
    cfg = load_config()
    assert cfg.url == DEFAULT_URL
    assert cfg.file is None


def test_eventbus_toml_wins_over_pyproject(write) -> None:
    write("pyproject.toml", '[tool.eventbus]\nurl = "memory://?from=pyproject"\n')
    write("eventbus.toml", 'url = "memory://?from=eventbus-toml"\n')
    assert load_config().url == "memory://?from=eventbus-toml"


def test_an_eventbus_table_inside_eventbus_toml_is_accepted(write) -> None:
    write("eventbus.toml", '[eventbus]\nurl = "memory://"\n')
    assert load_config().url == "memory://"


def test_eventbus_config_names_the_file(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("eventbus.toml", 'url = "memory://?from=cwd"\n')
    other = write("conf/staging.toml", 'url = "memory://?from=env"\n')
    monkeypatch.setenv("EVENTBUS_CONFIG", str(other))
    cfg = load_config()
    assert cfg.url == "memory://?from=env"
    assert cfg.file == str(other)


def test_eventbus_config_may_name_a_pyproject(write, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("sub/pyproject.toml", '[tool.eventbus]\nurl = "memory://?from=sub"\n')
    monkeypatch.setenv("EVENTBUS_CONFIG", str(path))
    assert load_config().url == "memory://?from=sub"


def test_path_argument_wins_over_eventbus_config(write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_CONFIG", str(write("env.toml", 'url = "memory://?env"\n')))
    chosen = write("arg.toml", 'url = "memory://?arg"\n')
    assert load_config(chosen).url == "memory://?arg"


def test_empty_eventbus_config_is_ignored(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("eventbus.toml", 'url = "memory://"\n')
    monkeypatch.setenv("EVENTBUS_CONFIG", "")
    assert load_config().url == "memory://"


# -- environment overrides ---------------------------------------------------------------


def test_eventbus_url_overrides_the_file(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("eventbus.toml", 'url = "sqlite:///shop.db"\n')
    monkeypatch.setenv("EVENTBUS_URL", "memory://")
    assert load_config().url == "memory://"


def test_eventbus_url_overrides_without_any_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_URL", "memory://")
    assert load_config().url == "memory://"


def test_eventbus_url_of_another_adapter_drops_the_files_broker_name(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("eventbus.toml", 'broker = "sqlite"\nurl = "sqlite:///shop.db"\n')
    monkeypatch.setenv("EVENTBUS_URL", "memory://")
    cfg = load_config()
    assert cfg.broker is None
    assert cfg.url == "memory://"


def test_eventbus_url_of_the_same_adapter_keeps_the_broker_name(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("eventbus.toml", 'broker = "memory"\nurl = "memory://?lease=5"\n')
    monkeypatch.setenv("EVENTBUS_URL", "memory://?lease=9")
    cfg = load_config()
    assert (cfg.broker, cfg.url) == ("memory", "memory://?lease=9")


def test_eventbus_broker_overrides_the_broker_name(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("eventbus.toml", 'broker = "sqlite"\n')
    monkeypatch.setenv("EVENTBUS_BROKER", "memory")
    assert load_config().broker == "memory"


# -- profiles ---------------------------------------------------------------------------

PROFILES = """
url = "sqlite:///dev.db"
source = "//shop"

[retry]
max_attempts = 5
initial_delay = 0.5

[profiles.test]
url = "memory://"

[profiles.test.retry]
max_attempts = 2

[profiles.prod]
url = "amqp://shop:${SHOP_PASSWORD}@rabbit:5672/"
"""


def test_profile_argument_overrides_top_level_keys(write) -> None:
    write("eventbus.toml", PROFILES)
    cfg = load_config(profile="test")
    assert cfg.url == "memory://"
    assert cfg.source == "//shop"  # not overridden: kept
    assert cfg.profile == "test"


def test_profile_tables_merge_key_by_key(write) -> None:
    write("eventbus.toml", PROFILES)
    retry = load_config(profile="test").retry
    assert retry.max_attempts == 2
    assert retry.initial_delay == 0.5  # from the top level [retry]


def test_eventbus_profile_picks_the_profile(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("eventbus.toml", PROFILES)
    monkeypatch.setenv("EVENTBUS_PROFILE", "test")
    cfg = load_config()
    assert (cfg.url, cfg.profile) == ("memory://", "test")


def test_profile_argument_wins_over_eventbus_profile(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("eventbus.toml", PROFILES + '\n[profiles.other]\nurl = "memory://?other"\n')
    monkeypatch.setenv("EVENTBUS_PROFILE", "test")
    assert load_config(profile="other").url == "memory://?other"


def test_profile_key_in_the_file_is_the_default_profile(write) -> None:
    write("eventbus.toml", 'profile = "test"\n' + PROFILES)
    assert load_config().url == "memory://"


def test_eventbus_url_wins_over_the_profile(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("eventbus.toml", PROFILES)
    monkeypatch.setenv("EVENTBUS_URL", "memory://?env")
    assert load_config(profile="test").url == "memory://?env"


def test_unknown_profile_suggests_the_closest(write) -> None:
    path = write("eventbus.toml", PROFILES)
    with pytest.raises(ConfigError) as info:
        load_config(profile="tset")
    msg = str(info.value)
    assert str(path) in msg
    assert "profiles.tset" in msg
    assert "did you mean 'test'?" in msg


def test_unknown_profile_from_the_environment_says_so(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("eventbus.toml", PROFILES)
    monkeypatch.setenv("EVENTBUS_PROFILE", "staging")
    with pytest.raises(ConfigError, match=r"EVENTBUS_PROFILE.*defined profiles: prod, test"):
        load_config()


def test_a_profile_without_any_config_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no such profile; defined profiles: none"):
        load_config(profile="test")


# -- ${VAR} interpolation --------------------------------------------------------------


def test_variables_are_interpolated(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("eventbus.toml", PROFILES)
    monkeypatch.setenv("SHOP_PASSWORD", "s3cr:t")
    cfg = load_config(profile="prod")
    assert cfg.url == "amqp://shop:s3cr:t@rabbit:5672/"
    assert cfg.redacted_url() == "amqp://shop:***@rabbit:5672/"


def test_default_value_when_the_variable_is_unset(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        "eventbus.toml",
        """
        url = "amqp://${RABBIT_USER:-guest}:${RABBIT_PASS:-guest}@${RABBIT_HOST:-localhost}/"
        [options]
        exchange = "${EXCHANGE:-}shop"
        """,
    )
    monkeypatch.setenv("RABBIT_HOST", "rabbit.internal")
    cfg = load_config()
    assert cfg.url == "amqp://guest:guest@rabbit.internal/"
    assert cfg.options == {"exchange": "shop"}


def test_variable_set_to_empty_is_used_not_the_default(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("eventbus.toml", 'source = "x${SUFFIX:-default}"\n')
    monkeypatch.setenv("SUFFIX", "")
    assert load_config().source == "x"


def test_variables_inside_nested_tables_and_lists(write, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        "eventbus.toml",
        """
        url = "memory://"
        [options]
        servers = ["${HOST_A}:9092", "${HOST_B:-b}:9092"]
        [options.sasl]
        password = "${KAFKA_PASSWORD}"
        """,
    )
    monkeypatch.setenv("HOST_A", "a")
    monkeypatch.setenv("KAFKA_PASSWORD", "pw")
    opts = load_config().options
    assert opts == {"servers": ["a:9092", "b:9092"], "sasl": {"password": "pw"}}


def test_unset_variable_names_file_key_and_fix(write) -> None:
    path = write("eventbus.toml", '[options]\nconnection_string = "${SB_CONNECTION}"\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    msg = str(info.value)
    assert str(path) in msg
    assert "options.connection_string" in msg
    assert "${SB_CONNECTION}" in msg
    assert "export SB_CONNECTION=" in msg


def test_unset_variable_in_an_unused_profile_is_not_an_error(write) -> None:
    write("eventbus.toml", PROFILES)  # profiles.prod needs SHOP_PASSWORD
    assert load_config(profile="test").url == "memory://"


def test_values_are_interpolated_once_not_recursively(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("eventbus.toml", 'source = "${A}"\n')
    monkeypatch.setenv("A", "${B}")
    assert load_config().source == "${B}"


# -- errors name the file, the key and the fix ------------------------------------------


def test_unknown_top_level_key_suggests_the_right_one(write) -> None:
    path = write("eventbus.toml", 'ulr = "memory://"\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    msg = str(info.value)
    assert msg.startswith(str(path))
    assert "'ulr' is not a setting" in msg
    assert "did you mean 'url'?" in msg


def test_unknown_key_without_a_close_match_lists_the_known_ones(write) -> None:
    write("eventbus.toml", "colour = 3\n")
    with pytest.raises(ConfigError, match="known keys: broker, console, content_mode, options, "):
        load_config()


def test_unknown_nested_key(write) -> None:
    write("eventbus.toml", "[retry]\nmax_attemps = 3\n")
    with pytest.raises(ConfigError, match=r"'retry\.max_attemps' .*did you mean 'max_attempts'"):
        load_config()


def test_unknown_worker_key(write) -> None:
    write("eventbus.toml", "[worker]\nprefech = 10\n")
    with pytest.raises(ConfigError, match=r"'worker\.prefech'.*did you mean 'prefetch'"):
        load_config()


def test_unknown_key_inside_a_profile(write) -> None:
    write("eventbus.toml", '[profiles.test]\nurll = "memory://"\n')
    with pytest.raises(ConfigError, match=r"'profiles\.test\.urll'.*did you mean 'url'"):
        load_config(profile="test")


def test_unknown_nested_key_inside_a_profile_names_the_profile(write) -> None:
    write("eventbus.toml", "[profiles.test.retry]\nmax_attemps = 3\n")
    with pytest.raises(ConfigError, match=r"'profiles\.test\.retry\.max_attemps'"):
        load_config(profile="test")


def test_in_pyproject_the_error_names_the_table(write) -> None:
    write("pyproject.toml", "[tool.eventbus]\nbrokr = 'memory'\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml \[tool\.eventbus\]: key 'brokr'"):
        load_config()


@pytest.mark.parametrize(
    ("toml", "key", "want"),
    [
        ("url = 5", "url", "must be str, not int"),
        ('[retry]\nmax_attempts = "5"', "retry.max_attempts", "must be int, not str"),
        ("[retry]\nmax_attempts = true", "retry.max_attempts", "must be int, not bool"),
        ("[retry]\ninitial_delay = false", "retry.initial_delay", "must be int or float"),
        ("[worker]\nprefetch = 1.5", "worker.prefetch", "must be int, not float"),
        ('options = "fast"', "options", "must be dict, not str"),
        ('profiles = "test"', "profiles", "must be dict, not str"),
    ],
)
def test_wrong_type_names_key_and_expected_type(write, toml: str, key: str, want: str) -> None:
    path = write("eventbus.toml", toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_config()
    msg = str(info.value)
    assert str(path) in msg
    assert f"key {key!r}" in msg
    assert want in msg


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[worker]\nprefetch = 0", "worker.prefetch"),
        ("[worker]\nconcurrency = -1", "worker.concurrency"),
        ("[worker]\npoll_interval = 0", "worker.poll_interval"),
        ("[worker]\ntimeout = -5", "worker.timeout"),
    ],
)
def test_out_of_range_worker_settings(write, toml: str, key: str) -> None:
    write("eventbus.toml", toml + "\n")
    with pytest.raises(ConfigError, match=f"key {key!r} must be"):
        load_config()


def test_invalid_retry_policy_names_retry(write) -> None:
    write("eventbus.toml", "[retry]\nmultiplier = 0.5\n")
    with pytest.raises(ConfigError, match=r"key 'retry'.*multiplier >= 1"):
        load_config()


def test_missing_file_given_as_path(workdir: Path) -> None:
    missing = workdir / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found; .*check the path"):
        load_config(missing)


def test_missing_file_named_by_eventbus_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBUS_CONFIG", "missing.toml")
    with pytest.raises(ConfigError, match=r"missing\.toml: .*not found; .*EVENTBUS_CONFIG"):
        load_config()


def test_directory_instead_of_file(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(workdir)


def test_invalid_toml_names_the_file_and_position(write) -> None:
    path = write("eventbus.toml", 'url = "memory://\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value)
    assert "line 1" in str(info.value)


# -- what the record holds ----------------------------------------------------------------


def test_every_setting_lands_in_the_record(write) -> None:
    write(
        "eventbus.toml",
        """
        broker = "memory"
        url = "memory://?lease=4"
        source = "//shop/billing"

        [options]
        lease = 4

        [retry]
        max_attempts = 7
        initial_delay = 0.1
        multiplier = 3
        max_delay = 9
        jitter = 0

        [worker]
        prefetch = 20
        poll_interval = 0.25
        concurrency = 3
        timeout = 12

        [publish]
        outbox = true
        """,
    )
    cfg = load_config()
    assert cfg == BusConfig(
        broker="memory",
        url="memory://?lease=4",
        options={"lease": 4},
        source="//shop/billing",
        retry=RetryPolicy(max_attempts=7, initial_delay=0.1, multiplier=3, max_delay=9, jitter=0),
        prefetch=20,
        poll_interval=0.25,
        concurrency=3,
        timeout=12,
        publish={"outbox": True},
        file=cfg.file,
        profile=None,
    )


def test_broker_name_without_url_leaves_the_url_to_the_adapter(write) -> None:
    write("eventbus.toml", 'broker = "memory"\n')
    cfg = load_config()
    assert (cfg.broker, cfg.url) == ("memory", None)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://user:pa55@host:5672/vh", "amqp://user:***@host:5672/vh"),
        # the password runs to the last "@" of the authority, as pika reads it
        ("amqp://u:p@ss@host/", "amqp://u:***@host/"),
        ("amqp://u:S3cr3t-@-Zq9@host:5672/vh?heartbeat=5", "amqp://u:***@host:5672/vh?heartbeat=5"),
        ("redis://:p@ss@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("http://host/a@b", "http://host/a@b"),  # an "@" after the authority is no password
        ("sqlite:///eventbus.db", "sqlite:///eventbus.db"),
        (
            "sqs://?region=eu-west-1&aws_secret_access_key=abc&x=1",
            "sqs://?region=eu-west-1&aws_secret_access_key=***&x=1",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;"
            "SharedAccessKey=c2VjcmV0",
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=***;SharedAccessKey=***",
        ),
    ],
)
def test_redacted_url_hides_secrets(url: str, shown: str) -> None:
    assert BusConfig(url=url).redacted_url() == shown


def test_content_mode_key(tmp_path, monkeypatch) -> None:
    from eventbus import ConfigError, EventBus, MemoryAdapter, load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "eventbus.toml").write_text('url = "memory://"\ncontent_mode = "structured"\n')
    cfg = load_config()
    assert cfg.content_mode == "structured"
    assert EventBus(MemoryAdapter(), config=cfg).content_mode == "structured"
    (tmp_path / "eventbus.toml").write_text('content_mode = "json"\n')
    with pytest.raises(ConfigError, match="content_mode"):
        load_config()


def test_repr_masks_a_password_with_an_at_sign_and_nested_secret_options() -> None:
    cfg = BusConfig(
        url="amqp://u:S3cr3t-@-Zq9@host/",
        options={
            "client": {
                "sasl.password": "hunter2",
                "sasl.username": "app",
                "deeper": {"api_key": "k3y", "list": ["x"]},
            },
            "connection_string": "Endpoint=sb://h/;SharedAccessKeyName=a;SharedAccessKey=c2Vj",
            "exchange": "shop",
        },
        inbox="postgresql://app:p@ss@db/shop",
    )
    shown = repr(cfg)
    for secret in ("S3cr3t", "Zq9", "hunter2", "k3y", "c2Vj", "p@ss", "ss@db"):
        assert secret not in shown, (secret, shown)
    assert "'sasl.username': 'app'" in shown and "'exchange': 'shop'" in shown
    assert "u:***@host" in shown and "app:***@db" in shown
