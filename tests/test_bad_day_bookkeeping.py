"""A bad day's bookkeeping stays small: one internet check per sweep, two commits per acted-on
row, open incidents of waiting posts left in the database, `status` that lists a page of them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, update

from autonomous_monitor import AutonomousMonitor
from daemon.slots import assess
from daemon.status_report import LAST_INCIDENTS, gather_status
from daemon.status_text import render
from notify.incidents import open_keys_to_judge
from recovery.sweep import run_sweep
from tests.support.ledger import failed_row
from tests.support.notify_receivers import running_path_recorder
from tests.support.xapi_double import BODY_503, Reply
from utils.db import incidents, posts


def _monitor(env: dict[str, str], make_ctx: Any, clock: Any) -> AutonomousMonitor:
    return AutonomousMonitor.from_settings(make_ctx(env).settings, clock=clock)


def _failed(ctx: Any, x_api: Any, count: int, tag: str) -> list[int]:
    return [failed_row(ctx, x_api, Reply(503, BODY_503), f"{tag} {n}") for n in range(count)]


def test_one_internet_check_serves_every_failed_row_of_a_sweep(env, make_ctx, x_api, clock):
    with running_path_recorder("/") as internet:
        ctx = make_ctx({**env, "CONNECTIVITY_URLS": internet.url})
        _failed(ctx, x_api, 4, "first")
        report = run_sweep(ctx)
        assert [a.outcome for a in report.actions] == ["retry_scheduled"] * 4
        assert len(internet.paths) == 1  # retry_transient asked once, for all four rows
        _failed(ctx, x_api, 2, "second")
        clock.advance(seconds=1)
        run_sweep(ctx)
        assert len(internet.paths) == 2  # a new sweep looks again: the answer is not kept


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgres_url", "mysql_url"])
def test_acting_on_a_failed_row_takes_two_commits(env, make_ctx, x_api, clock, request, database):
    if database != "sqlite":
        env = {**env, "DATABASE_URL": request.getfixturevalue(database)}
    monitor = _monitor(env, make_ctx, clock)
    commits: list[int] = []
    event.listen(monitor.ctx.engine, "commit", lambda _conn: commits.append(1))
    spent = []
    for count in (3, 13):  # the difference is what ten more rows cost, fixed costs cancel out
        ids = _failed(monitor.ctx, x_api, count, f"batch {count}")
        clock.advance(seconds=1)
        commits.clear()
        report = monitor.run_sweep()
        spent.append(len(commits))
        assert sorted(a.post_id for a in report.actions if a.outcome == "retry_scheduled") == ids
    # the routine's transition and its action; classification and incidents are batched
    assert spent[1] - spent[0] <= 2 * 10 + 1, spent
    with monitor.ctx.engine.connect() as conn:
        rows = conn.execute(select(posts.c.id, posts.c.failure_class)).all()
        linked = dict(conn.execute(select(incidents.c.key, incidents.c.post_id)
                                   .where(incidents.c.status == "open")).all())
    assert {failure_class for _, failure_class in rows} == {"server_error"}
    assert linked == {f"failure:server_error:post:{post_id}": post_id for post_id, _ in rows}
    monitor.close()


@pytest.mark.slow
def test_only_the_incidents_of_posts_that_moved_on_are_judged_again(env, make_ctx, x_api, clock):
    monitor = _monitor(env, make_ctx, clock)
    ctx = monitor.ctx
    ids = _failed(ctx, x_api, 6, "waiting")
    monitor.run_sweep()  # six open incidents, six posts waiting for their retry
    sent, gone = ids[1], ids[4]
    with ctx.engine.begin() as conn:  # the pipeline posts one row and deletes another
        conn.execute(update(posts).where(posts.c.id == sent).values(
            status="posted", tweet_id="1234567890", posted_at=ctx.now(), updated_at=ctx.now()))
        conn.execute(posts.delete().where(posts.c.id == gone))
    key = "failure:server_error:post:{}".format
    assert set(open_keys_to_judge(ctx, [])) == {key(sent), key(gone)}  # not the four waiting
    assert set(open_keys_to_judge(ctx, [], moved_limit=1)) == {key(sent)}  # the rest next sweep
    assert set(open_keys_to_judge(ctx, [ids[0]])) == {key(sent), key(gone), key(ids[0])}
    clock.advance(seconds=1)
    monitor.run_sweep()
    with ctx.engine.connect() as conn:
        still_open = set(conn.execute(select(incidents.c.post_id).where(incidents.c.status == "open"))
                         .scalars())
    assert sent not in still_open  # "Posted …" resolved it at once
    assert still_open >= {ids[0], ids[2], ids[3], ids[5]}
    monitor.close()


@pytest.mark.slow
def test_status_lists_a_page_of_open_incidents_and_counts_them_all(env, make_ctx, clock):
    ctx = make_ctx(env)
    now = ctx.now()
    many = LAST_INCIDENTS + 12
    with ctx.engine.begin() as conn:
        conn.execute(insert(incidents), [
            {"key": f"failure:rate_limit:post:{n}", "post_id": n, "status": "open", "severity": "warning",
             "title": f"post {n}", "detail": "429", "opened_at": now + timedelta(seconds=n),
             "updated_at": now, "failure_class": "rate_limit"} for n in range(1, many + 1)])
    report = json.loads(json.dumps(gather_status(ctx), default=str))
    assert report["open_incidents"] == many
    assert [i["title"] for i in report["incidents"]] == [f"post {n}" for n in range(1, LAST_INCIDENTS + 1)]
    assert "… and 12 more, newer" in render(report, ctx.settings.monitor_timezone)
    reasons = [reason for slot in assess(ctx, now).slots for reason in slot.reasons]
    posts_reasons = {r.text for r in reasons if "post" in r.text}
    assert posts_reasons == {f"post 1 and {many - 1} more failing (rate_limit)"}
