"""What reaches the log files: times with their offset in MONITOR_TIMEZONE, no secret even at
LOG_LEVEL=DEBUG (oauthlib prints the signature base string, with the token URL-encoded)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import assert_no_secret, run_cli
from utils.redact import redact, register_secrets

TOKEN = "1450000000000000000-SECRET/acc+ess=tok&enZZ"


def test_a_url_encoded_secret_is_redacted_in_every_spelling() -> None:
    secret = "a/b+c=SECRETxyz"
    register_secrets([secret])
    for spelling in (secret, quote(secret, safe=""), quote(secret, safe="").lower().replace("secretxyz",
                                                                                          "SECRETxyz"),
                     "a%2Fb%2Bc%3DSECRETxyz", "a%2Fb+c%3DSECRETxyz".replace("+", "%2B")):
        assert redact(f"base string: oauth_token%3D{spelling}%26") == "base string: oauth_token%3D***%26"


@pytest.mark.slow
def test_debug_logging_keeps_tokens_out_and_times_carry_the_zone_offset(env: dict[str, str]) -> None:
    environ = {**env, "LOG_LEVEL": "DEBUG", "MONITOR_TIMEZONE": "America/New_York",
               "TWITTER_ACCESS_TOKEN": TOKEN}
    result = run_cli(["check"], environ)
    assert result.returncode in (0, 1, 2, 3), result.stderr
    log = (Path(env["LOG_DIR"]) / "autonomous_monitor.log").read_text()
    assert "checks.twitter_api" in log or "twitter_api" in log  # the X API was asked (OAuth 1.0a)
    assert "oauthlib" not in log and "Signature base string" not in log
    for spelling in (TOKEN, quote(TOKEN, safe=""), quote(TOKEN, safe="").lower()):
        assert spelling not in log
    assert_no_secret(log, result.stdout, result.stderr)
    stamps = [line.split(" ", 1)[0] for line in log.splitlines() if line[:4].isdigit()]
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0[45]:00")  # EST or EDT
    assert stamps and all(stamp.fullmatch(s) for s in stamps), stamps[:3]
