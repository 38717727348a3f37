"""The one redactor every output passes through."""

from __future__ import annotations

import json

import pytest

from utils.redact import MASK, one_line, redact, register_secrets

SECRET = "SECRETredacttest0123456789abcdefXYZ"
register_secrets([SECRET])


@pytest.mark.parametrize("text", [
    f"token {SECRET} end",
    f"token {SECRET[:20]}",                      # shortened by someone before it got here
    f"token {SECRET[:12]}…",
    "GET https://user:hunter2pass@db.example/x",
    'Authorization: OAuth oauth_consumer_key="abcdef123", oauth_token="123-abcdefgh"',
    "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid",
    '{"refresh_token": "bWljaGFlbC1yZWZyZXNo", "access_token": "dGhpcy1pcy1hY2Nlc3M"}',
])
def test_secrets_and_secret_shapes_are_masked(text: str) -> None:
    out = redact(text)
    assert MASK in out
    for fragment in (SECRET[:8], "hunter2pass", "abcdef123", "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA",
                     "bWljaGFlbC1yZWZyZXNo", "dGhpcy1pcy1hY2Nlc3M"):
        assert fragment not in out


@pytest.mark.parametrize("text", ["nothing secret SECRE", "HTTP 500 from 127.0.0.1:8080", "login monitor"])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_one_line_redacts_before_it_shortens() -> None:
    out = one_line(f"{'x' * 290} {SECRET}", limit=300)
    assert len(out) <= 300 and SECRET[:6] not in out


@pytest.mark.parametrize("text", [
    'Access denied for user \'root\'@\'localhost\' (using password: YES)"',
    'client_secret="abc\\"def" and oauth_token="tok\\"en", password=hunter2"',
    "postgresql://monitor:pw\"x@db/test",
])
def test_redacting_json_text_keeps_it_valid_json(text):
    encoded = json.dumps({"detail": text, "more": [text]})
    decoded = json.loads(redact(encoded))  # `check --json` and `/status.json` redact encoded text
    assert set(decoded) == {"detail", "more"}
