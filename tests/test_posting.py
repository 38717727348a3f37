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


@pytest.mark.slow
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
    x_api.script(TWEETS, Reply(503, BODY_503))
    assert post(ctx, later).status == "failed"
    assert transition(ctx.engine, later, "failed", "retry_scheduled", ctx.now(),
                      next_attempt_at=ctx.now() + timedelta(minutes=5))
    assert post(ctx, later).status == "not_claimed"
    assert post(ctx, later, now=ctx.now() + timedelta(minutes=6)).status == "posted"
    assert x_api.calls[TWEETS] == 3


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


@pytest.mark.slow
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
    settings = load_settings({"ENV_FILE": "/dev/null", "TWITTER_API_KEY": "pipeline-key-1",
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


# --- one state machine, optimistic concurrency, the pipeline-facing package (issue 10) --------

def test_the_state_machine_covers_every_status_and_refuses_other_moves(env, make_ctx, x_api):
    from autonomiq_ledger import TRANSITIONS, IllegalTransition, PostStatus, allowed
    contract = ("scheduled", "posting", "posted", "failed", "retry_scheduled", "gave_up", "skipped")
    assert set(TRANSITIONS) == set(PostStatus) and tuple(PostStatus) == contract  # README's list
    assert not any(TRANSITIONS[s] for s in ("posted", "gave_up", "skipped"))  # terminal
    assert allowed("posting", "posted") and not allowed("posted", "retry_scheduled")
    ctx = make_ctx(env)
    done = schedule_post(ctx.engine, "terminal", ctx.now())
    assert post(ctx, done).status == "posted"
    before = get_post(ctx.engine, done)
    for bad in (("posted", "retry_scheduled"), ("scheduled", "posted"), ("posting", "skipped")):
        with pytest.raises(IllegalTransition):
            transition(ctx.engine, done, *bad, ctx.now())
    assert get_post(ctx.engine, done) == before


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_transition_moves_a_row_only_while_it_is_as_it_was_read(backend, env, make_ctx, x_api, request):
    from sqlalchemy import update

    from utils.db import posts

    url = env["DATABASE_URL"] if backend == "sqlite" else request.getfixturevalue(f"{backend}_url")
    ctx = make_ctx({**env, "DATABASE_URL": url})
    x_api.script(TWEETS, Reply(503, BODY_503))
    post_id = schedule_post(ctx.engine, "read then moved", ctx.now())
    post(ctx, post_id)
    for change in ({"updated_at": ctx.now() + timedelta(seconds=1)}, {"attempts": 7}):
        seen = get_post(ctx.engine, post_id)
        with ctx.engine.begin() as conn:  # the pipeline touches it; the status stays `failed`
            conn.execute(update(posts).where(posts.c.id == post_id).values(**change))
        assert not transition(ctx.engine, post_id, "failed", "gave_up", ctx.now(), expect=seen)
        assert get_post(ctx.engine, post_id)["status"] == "failed"
    with ctx.engine.begin() as conn:  # NULL-safe: a pipeline row with no updated_at or attempts
        conn.execute(update(posts).where(posts.c.id == post_id).values(updated_at=None))
    seen = get_post(ctx.engine, post_id)
    assert transition(ctx.engine, post_id, "failed", "retry_scheduled", ctx.now(), expect=seen,
                      next_attempt_at=ctx.now())


def test_a_pipeline_timestamp_in_its_own_form_still_matches_its_read(env, make_ctx, x_api):
    from sqlalchemy import text

    ctx = make_ctx(env)
    with ctx.engine.begin() as conn:
        for stamp in ("'2026-11-28T06:59:00Z'", "1795849140", "'2026-11-28 08:59:00+02:00'"):
            conn.execute(text("INSERT INTO posts (text, status, attempts, updated_at, last_error) "
                              f"VALUES ('stamp ' || {stamp}, 'failed', 1, {stamp}, '503')"))
    for post_id in (1, 2, 3):
        seen = get_post(ctx.engine, post_id)
        assert transition(ctx.engine, post_id, "failed", "gave_up", ctx.now(), expect=seen), seen


def _answer_after_the_row_changes(x_api, change) -> threading.Thread:
    """X answers 201 a second late; meanwhile another process changes the row (`change`)."""
    x_api.script(TWEETS, Reply(201, {"data": {"id": "1861111111111111111", "text": "slow"}},
                               mode="hang", delay=1.0))

    def meanwhile():
        while not x_api.calls[TWEETS]:
            threading.Event().wait(0.01)
        change()

    thread = threading.Thread(target=meanwhile)
    thread.start()
    return thread


@pytest.mark.slow
@pytest.mark.parametrize("moved_to", ["failed", "posting"])
def test_the_outcome_update_reports_a_row_that_changed_under_the_call(moved_to, env, make_ctx, x_api):
    from sqlalchemy import update

    from utils.db import posts

    ctx = make_ctx(env)
    post_id = schedule_post(ctx.engine, "slow", ctx.now())

    def change():  # released as stuck (failed), or released and claimed again (posting)
        with ctx.engine.begin() as conn:
            conn.execute(update(posts).where(posts.c.id == post_id).values(
                status=moved_to, attempts=2, updated_at=ctx.now() + timedelta(seconds=5)))

    thread = _answer_after_the_row_changes(x_api, change)
    result = post(ctx, post_id)
    thread.join(10)
    row = get_post(ctx.engine, post_id)
    assert result.status == "posted" and result.conflict and "changed during the call" in result.conflict
    if moved_to == "failed":  # only waiting for a retry: the tweet id is recorded, nothing reposts
        assert row["status"] == "posted" and row["tweet_id"] == "1861111111111111111"
    else:  # someone else holds it: left to them (their duplicate answer will say posted)
        assert row["status"] == "posting" and row["attempts"] == 2 and "left as it is" in result.conflict


PIPELINE_SCRIPT = '''
import json, sys
import utils                      # the pipeline's own package, first on sys.path
assert utils.WHO == "pipeline", utils
import tweepy, requests
from sqlalchemy import create_engine, text
from autonomiq_ledger import (CLAIMABLE, TRANSITIONS, IllegalTransition, PostResult, PostStatus,
                              post, schedule_post)
from datetime import datetime, timezone

class ToDouble(requests.adapters.HTTPAdapter):
    def send(self, request, **kwargs):
        request.url = request.url.replace("https://api.twitter.com", sys.argv[2])
        kwargs["timeout"] = 5
        return super().send(request, **kwargs)

client = tweepy.Client(consumer_key="test-consumer-key", consumer_secret="s",
                       access_token="pipeline-token", access_token_secret="s")
client.session.mount("https://api.twitter.com", ToDouble())
engine = create_engine(sys.argv[1])
post_id = schedule_post(engine, "from a pipeline with its own utils", datetime.now(timezone.utc))
result = post(engine, post_id, client=client)
assert isinstance(result, PostResult) and result.status == PostStatus.POSTED, result
with engine.connect() as conn:
    status = conn.execute(text("SELECT status FROM posts WHERE id = :i"), {"i": post_id}).scalar()
print(json.dumps({"status": status, "utils": utils.WHO, "tweet": result.tweet_id,
                  "transitions": len(TRANSITIONS), "shadowed": "utils.db" in sys.modules}))
'''


@pytest.mark.slow
def test_the_package_works_in_a_pipeline_that_has_its_own_utils(tmp_path, env, make_ctx, x_api):
    import json
    import subprocess
    import sys
    from pathlib import Path

    assert make_ctx(env).engine is not None  # the monitor creates the schema
    pipeline = tmp_path / "pipeline"
    (pipeline / "utils").mkdir(parents=True)
    (pipeline / "utils" / "__init__.py").write_text('WHO = "pipeline"\n')
    (pipeline / "utils" / "db.py").write_text('raise ImportError("the pipeline\'s own utils.db")\n')
    (pipeline / "main.py").write_text(PIPELINE_SCRIPT)
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, str(pipeline / "main.py"), env["DATABASE_URL"], x_api.base_url],
                         cwd=pipeline, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{pipeline}:{root}"},
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out == {"status": "posted", "utils": "pipeline", "tweet": x_api.tweets[0]["id"],
                   "transitions": 7, "shadowed": False}
