"""The post ledger API: claim, post through the real tweepy client, record the outcome once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from autonomiq_ledger.posting import get_post, post, schedule_post, transition
from tests.conftest import assert_no_secret
from tests.support.xapi_double import BODY_403_DUPLICATE, BODY_429, BODY_503, TWEETS, Reply
from utils.db import init_db, make_engine, utc_now
from utils.state import get_state


def test_post_records_tweet_id_and_the_24_hour_budget(env, make_ctx, x_api):
    ctx = make_ctx(env)
    post_id = schedule_post(ctx.engine, "first post", ctx.now())
    result = post(ctx, post_id)
    row = get_post(ctx.engine, post_id)
    assert result.status == "posted" and row["status"] == "posted"
    assert row["tweet_id"] == x_api.tweets[0]["id"] == result.tweet_id
    assert row["attempts"] == 1 and row["posted_at"] == ctx.now()
    assert x_api.calls[TWEETS] == 1
    budget = get_state(ctx.engine, "x_api:post")
    assert budget["user_24h"]["remaining"] == 16 and budget["user_24h"]["limit"] == 17
    assert budget["last"]["ok"] is True


def test_failure_keeps_error_text_and_rate_headers(env, make_ctx, x_api):
    ctx = make_ctx(env)
    reset = int((ctx.now() + timedelta(hours=3)).timestamp())
    x_api.script(TWEETS, Reply(429, BODY_429, {"x-user-limit-24hour-remaining": "0",
                                               "x-user-limit-24hour-reset": str(reset),
                                               "x-rate-limit-remaining": "99"}))
    post_id = schedule_post(ctx.engine, "limited", ctx.now())
    result = post(ctx, post_id)
    row = get_post(ctx.engine, post_id)
    assert result.status == "failed" and row["status"] == "failed"
    assert row["last_error"] == "429 Too Many Requests\nToo Many Requests"
    headers = json.loads(row["last_error_headers"])
    assert headers["x-user-limit-24hour-remaining"] == 0
    assert headers["x-user-limit-24hour-reset"] == reset
    assert row["ambiguous_attempt"] is False
    assert get_state(ctx.engine, "x_api:post")["user_24h"]["remaining"] == 0
    assert_no_secret(row["last_error"], row["last_error_headers"])


def test_server_error_and_read_timeout_are_ambiguous(env, make_ctx, x_api):
    ctx = make_ctx({**env, "CHECK_TIMEOUT_SECONDS": "1"})
    x_api.script(TWEETS, Reply(503, BODY_503), Reply(mode="post_then_hang"))
    first = schedule_post(ctx.engine, "five oh three", ctx.now())
    second = schedule_post(ctx.engine, "went out but hung", ctx.now())
    assert post(ctx, first).ambiguous is True
    result = post(ctx, second)
    assert result.status == "failed" and result.ambiguous is True
    assert "timed out" in get_post(ctx.engine, second)["last_error"].lower()
    assert [t["text"] for t in x_api.tweets] == ["went out but hung"]
    assert get_post(ctx.engine, second)["ambiguous_attempt"] is True


def test_refused_connection_is_not_ambiguous(env, make_ctx):
    ctx = make_ctx({**env, "TWITTER_API_BASE_URL": "http://127.0.0.1:9"})
    post_id = schedule_post(ctx.engine, "nobody listens", ctx.now())
    result = post(ctx, post_id)
    assert result.status == "failed" and result.ambiguous is False
    assert get_post(ctx.engine, post_id)["ambiguous_attempt"] is False


def test_duplicate_answer_is_recorded_not_ambiguous(env, make_ctx, x_api):
    ctx = make_ctx(env)
    x_api.script(TWEETS, Reply(403, BODY_403_DUPLICATE))
    post_id = schedule_post(ctx.engine, "dup", ctx.now())
    assert post(ctx, post_id).ambiguous is False
    assert "duplicate content" in get_post(ctx.engine, post_id)["last_error"]


def test_only_claimable_and_due_rows_are_posted(env, make_ctx, x_api):
    ctx = make_ctx(env)
    done = schedule_post(ctx.engine, "done", ctx.now())
    assert post(ctx, done).status == "posted"
    assert post(ctx, done).status == "not_claimed"
    later = schedule_post(ctx.engine, "later", ctx.now())
    assert transition(ctx.engine, later, "scheduled", "retry_scheduled", ctx.now(),
                      next_attempt_at=ctx.now() + timedelta(minutes=5))
    assert post(ctx, later).status == "not_claimed"
    assert post(ctx, later, now=ctx.now() + timedelta(minutes=6)).status == "posted"
    assert x_api.calls[TWEETS] == 2


def test_bad_rows_are_refused_without_an_api_call(env, make_ctx, x_api):
    ctx = make_ctx(env)
    huge = schedule_post(ctx.engine, "x" * 100_000, ctx.now())
    blank = schedule_post(ctx.engine, "   ", ctx.now())
    assert "100000 characters" in post(ctx, huge).error
    assert post(ctx, blank).status == "not_claimed"
    assert post(ctx, 424242).error == "no such row"
    assert x_api.calls[TWEETS] == 0


def test_engine_and_client_form_for_pipelines(env, make_ctx, x_api):
    ctx = make_ctx(env)
    engine = make_engine(env["DATABASE_URL"])
    init_db(engine)
    post_id = schedule_post(engine, "from the pipeline", ctx.now())
    assert post(engine, post_id, client=ctx.x_client).status == "posted"
    with pytest.raises(ValueError):
        post(engine, post_id)
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_racing_posters_post_a_row_once(backend, env, make_ctx, x_api, request):
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else env["DATABASE_URL"]
    contexts = [make_ctx({**env, "DATABASE_URL": url}) for _ in range(6)]
    post_ids = [schedule_post(contexts[0].engine, f"race {n}", contexts[0].now()) for n in range(3)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(contexts))

    def racer(ctx):
        barrier.wait()
        outcomes.extend(post(ctx, post_id).status for post_id in post_ids)

    threads = [threading.Thread(target=racer, args=(ctx,)) for ctx in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes.count("posted") == 3
    assert sorted(t["text"] for t in x_api.tweets) == ["race 0", "race 1", "race 2"]
    assert x_api.calls[TWEETS] == 3


def test_a_pipeline_with_its_own_engine_and_client_never_stores_its_token(tmp_path, x_api):
    from utils.config import load_settings
    from utils.x_client import build_client

    token = "1234-PIPELINEownTOKENnotRegisteredElsewhere42"
    settings = load_settings({"ENV_FILE": str(tmp_path / "none"), "TWITTER_API_KEY": "pipeline-key-1",
                              "TWITTER_API_SECRET": "pipeline-secret-1", "TWITTER_ACCESS_TOKEN": token,
                              "TWITTER_ACCESS_TOKEN_SECRET": "pipeline-tsecret-1",
                              "TWITTER_API_BASE_URL": x_api.base_url})
    engine = make_engine(f"sqlite:///{tmp_path / 'pipeline.db'}")
    init_db(engine)
    x_api.script(TWEETS, Reply(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                                     "detail": f"Unauthorized: token {token} is invalid"}))
    post_id = schedule_post(engine, "from the pipeline", utc_now())
    result = post(engine, post_id, client=build_client(settings, timeout_s=5))
    row = get_post(engine, post_id)
    assert result.status == "failed" and "Unauthorized" in row["last_error"]
    assert token not in row["last_error"] and token[:12] not in row["last_error"]


def test_a_pipeline_client_with_tweepy_default_responses_records_the_tweet_id(env, make_ctx, x_api):
    import tweepy

    from utils.x_client import build_client

    ctx = make_ctx(env)
    client = build_client(ctx.settings, timeout_s=5)
    client.return_type = tweepy.Response  # what `tweepy.Client(...)` gives a pipeline by default
    post_id = schedule_post(ctx.engine, "default client", ctx.now())
    result = post(ctx.engine, post_id, client=client, now=ctx.now())
    assert result.status == "posted" and result.tweet_id == x_api.tweets[0]["id"]
    assert x_api.calls[TWEETS] == 1 and get_post(ctx.engine, post_id)["tweet_id"] == result.tweet_id
