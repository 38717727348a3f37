"""Settings: defaults, .env underneath the environment, and exit 78 naming the variable."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from tests.conftest import run_cli
from utils.config import EX_CONFIG, SPECS, ConfigError, load_settings, parse_duration


def test_defaults_work_on_a_fresh_machine_without_credentials(tmp_path: Path) -> None:
    settings = load_settings({"ENV_FILE": "/dev/null"})
    assert settings.database_url.startswith("sqlite:///data/")
    assert settings.twitter_api_base_url == "https://api.twitter.com"
    assert settings.check_timeout_seconds == 10
    assert settings.posting_times == (time(9, 0), time(15, 0))
    assert settings.sweep_interval == timedelta(minutes=30)
    assert settings.twitter_api_tier == "free"
    assert not settings.has_oauth1_credentials()
    assert [str(p) for p in settings.disk_paths] == ["/", "data", "logs"]


def test_env_file_is_read_and_real_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text("CHECK_TIMEOUT_SECONDS=4\nDISK_WARN_FREE_PERCENT=20\n"
                        "this line is garbage without an equals sign\n\x00\x01 binary\n")
    settings = load_settings({"ENV_FILE": str(env_file), "DISK_WARN_FREE_PERCENT": "30"})
    assert settings.check_timeout_seconds == 4
    assert settings.disk_warn_free_percent == 30
    assert settings.env_file == env_file


def test_env_file_defaults_to_dot_env_in_working_directory(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TWITTER_API_TIER=basic\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).twitter_api_tier == "basic"


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("CHECK_TIMEOUT_SECONDS", "ten", "is not a number"),
    ("DISK_WARN_FREE_PERCENT", "150", "must be at most 100"),
    ("POSTING_TIMES", "09:00,25:00", "'25:00', which is not a time of day"),
    ("MONITOR_TIMEZONE", "Mars/Olympus", "is not a known timezone"),
    ("TWITTER_API_BASE_URL", "api.twitter.com", "is not a valid http/https URL"),
    ("CONNECTIVITY_URLS", "https://ok.example,ftp://x", "is not a valid http/https URL"),
    ("DATABASE_URL", "not a url", "is not a database URL"),
    ("DATABASE_URL", "sqlite://", "names an in-memory SQLite database"),
    ("DATABASE_URL", "sqlite:///:memory:", "names an in-memory SQLite database"),
    ("SWEEP_INTERVAL", "soon", "is not a duration"),
    ("TWITTER_API_TIER", "enterprise", "must be one of free, basic, pro, pay_per_use"),
    ("DRY_RUN", "maybe", "is not a boolean"),
    ("SCHEDULER_SERVICE", "pipeline.service; rm -rf /", "is not a systemd unit name"),
    ("CLEANUP_PATHS", "/var/tmp/../../etc/*", "must not contain '..'"),
    ("MONITOR_HTTP_PORT", "70000", "must be at most 65535"),
])
def test_bad_value_names_the_variable(variable: str, value: str, problem: str,
                                      tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ENV_FILE": "/dev/null", variable: value})
    assert caught.value.variable == variable
    assert problem in str(caught.value)


@pytest.mark.parametrize(("variable", "value"), [
    ("CHECK_TIMEOUT_SECONDS", "abc"), ("POSTING_TIMES", "25:00"), ("MONITOR_TIMEZONE", "Nowhere/City"),
    ("TWITTER_API_BASE_URL", "http://"),
])
@pytest.mark.slow
def test_cli_exits_78_with_one_line_and_no_traceback(variable: str, value: str,
                                                     tmp_path: Path) -> None:
    proc = run_cli(["check"], {"ENV_FILE": "/dev/null", variable: value,
                               "LOG_DIR": str(tmp_path / "logs")})
    assert proc.returncode == EX_CONFIG
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.slow
def test_bad_value_in_env_file_also_exits_78(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DISK_CRIT_FREE_PERCENT=nope\n")
    proc = run_cli(["check"], {"ENV_FILE": str(env_file)})
    assert proc.returncode == EX_CONFIG and "DISK_CRIT_FREE_PERCENT" in proc.stderr


def test_secret_values_are_never_echoed_in_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ENV_FILE": "/dev/null",
                       "HEARTBEAT_URL": "not-a-url-SECRETtoken123"})
    assert "SECRETtoken123" not in str(caught.value)


def test_public_view_hides_secrets_but_shows_the_rest(tmp_path: Path) -> None:
    settings = load_settings({"ENV_FILE": "/dev/null",
                              "TWITTER_API_SECRET": "SECRETvalue12345",
                              "DATABASE_URL": "postgresql://mon:SECRETpw99@127.0.0.1/test"})
    view = settings.public_view()
    assert view["TWITTER_API_SECRET"] == "<set>"
    assert view["TWITTER_ACCESS_TOKEN"] == "<unset>"
    assert view["POSTING_TIMES"] == "09:00,15:00"
    assert "SECRETpw99" in settings.secret_values and "SECRETvalue12345" in settings.secret_values


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h", 3600), ("2d", 172800),
                                               ("45", 45), ("1.5m", 90)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_env_example_documents_every_setting_and_loads_as_is(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    documented = {line.split("=", 1)[0] for line in example.read_text().splitlines()
                  if line and not line.startswith("#")}
    assert documented == {spec.env for spec in SPECS}
    from_example = load_settings({"ENV_FILE": str(example)}).public_view()
    defaults = load_settings({"ENV_FILE": "/dev/null"}).public_view()
    assert from_example == defaults  # the example shows the real defaults


def _matches(value: object, hint: object) -> bool:
    """isinstance for the annotations Settings uses: X | None, tuple[X, ...], tuple[X, Y]."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(value, arg) for arg in args)
    if origin is tuple:
        items = args[:1] * len(value) if args[-1:] == (Ellipsis,) else args  # type: ignore[arg-type]
        return isinstance(value, tuple) and len(items) == len(value) and all(
            _matches(item, arg) for item, arg in zip(value, items, strict=True))
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return value is None if hint is type(None) else isinstance(value, hint)  # type: ignore[arg-type]


def test_specs_and_settings_fields_match_by_name_and_type(tmp_path: Path) -> None:
    import typing
    from dataclasses import fields

    from utils.config import Settings

    origin = {"env_file", "secret_values", "env_warnings"}
    names = [f.name for f in fields(Settings) if f.name not in origin]
    assert sorted(names) == sorted(spec.env.lower() for spec in SPECS)  # one field per Spec
    assert len(names) == len(set(names))
    hints = typing.get_type_hints(Settings)
    (tmp_path / "data").mkdir()
    full = {"MONITOR_HTTP_PORT": "8080", "HEARTBEAT_URL": "https://hc.example/ping/x",
            "SCHEDULER_HEARTBEAT_FILE": "/tmp/beat", "SCHEDULER_SERVICE": "pipeline",
            "MAINTENANCE_WINDOWS": "02:00-03:00", "TWITTER_API_KEY": "k"}
    for environ in ({}, full):  # defaults (many None) and set values
        settings = load_settings({"ENV_FILE": "/dev/null", **environ})
        for spec in SPECS:
            value = getattr(settings, spec.env.lower())
            assert _matches(value, hints[spec.env.lower()]), (spec.env, value)


def test_settings_are_frozen_and_overrides_make_a_typed_copy() -> None:
    from dataclasses import FrozenInstanceError

    settings = load_settings({"ENV_FILE": "/dev/null"})
    with pytest.raises(FrozenInstanceError):
        settings.dry_run = True  # type: ignore[misc]
    changed = settings.with_overrides(dry_run=True, SWEEP_INTERVAL=timedelta(minutes=5))
    assert changed.dry_run and changed.sweep_interval == timedelta(minutes=5)
    assert not settings.dry_run and changed.values["DRY_RUN"] is True
    with pytest.raises(TypeError):
        settings.with_overrides(no_such_setting=1)
    assert repr(settings) == "Settings(env_file=/dev/null)"  # never the values (secrets)


def test_inline_comments_in_env_file_are_not_part_of_the_value(tmp_path: Path) -> None:
    # The service reads .env with this same reader (no EnvironmentFile=), so this holds there too.
    env_file = tmp_path / ".env"
    env_file.write_text("POSTING_TIMES=10:00 # morning\nTWITTER_BEARER_TOKEN=AAAAtoken123 # the portal\n")
    settings = load_settings({"ENV_FILE": str(env_file)})
    assert settings.posting_times == (time(10, 0),)
    assert settings.twitter_bearer_token == "AAAAtoken123"


def test_a_status_page_served_beyond_loopback_is_a_warning(tmp_path: Path) -> None:
    from utils.env_file import config_warnings

    base = {"ENV_FILE": "/dev/null", "DATA_DIR": str(tmp_path), "LOG_DIR": str(tmp_path)}
    public = load_settings({**base, "MONITOR_HTTP_PORT": "8787", "MONITOR_HTTP_HOST": "0.0.0.0"})
    assert any("MONITOR_HTTP_HOST=0.0.0.0" in w for w in config_warnings(public))
    local = load_settings({**base, "MONITOR_HTTP_PORT": "8787"})
    assert not any("MONITOR_HTTP_HOST" in w for w in config_warnings(local))
