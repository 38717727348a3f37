"""A complete monitor environment for tests and benchmarks: fake secrets, a clock moved by hand,
and the settings that point the monitor at its own folder and the loopback doubles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

# Recognisable fake secrets: no test output, log, row or message may ever contain them.
FAKE_SECRETS = {
    "TWITTER_API_KEY": "test-consumer-key",  # the double checks this one; kept short on purpose
    "TWITTER_API_SECRET": "SECRETapisecret0123456789abcdefZZ",
    "TWITTER_ACCESS_TOKEN": "1450000000000000000-SECRETaccesstokenZZ",
    "TWITTER_ACCESS_TOKEN_SECRET": "SECRETaccesstokensecret0123456789ZZ",
    "TWITTER_BEARER_TOKEN": "AAAAAAAAAAAAAAAAAAAAASECRETbearerZZ",
}
LEAK_MARKERS = ("SECRETapisecret", "SECRETaccesstoken", "SECRETbearer", "SECRETaccesstokensecret")


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 28, 7, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def monitor_env(folder: Path, x_api_url: str, web_url: str) -> dict[str, str]:
    """A complete monitor environment in `folder`: its own SQLite and logs, the fake credentials,
    the loopback X API double and loopback "internet" (tests and benchmarks share it)."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    return {
        **FAKE_SECRETS,
        "ENV_FILE": "/dev/null",  # no .env file (an ENV_FILE that is set must exist)
        "TWITTER_API_BASE_URL": x_api_url,
        "DATABASE_URL": f"sqlite:///{folder / 'data' / 'monitor.db'}",
        "DATA_DIR": str(folder / "data"),
        "LOG_DIR": str(folder / "logs"),
        "DISK_PATHS": str(folder),
        "CONNECTIVITY_URLS": web_url,
        "MONITOR_TIMEZONE": "UTC",
        "CLEANUP_PATHS": f"{folder / 'logs'}/*.log.[0-9]*",
    }
