"""Ledger rows made the real way, for tests that start from a failed post."""

from __future__ import annotations

from typing import Any

from autonomiq_ledger.posting import post, schedule_post
from tests.support.xapi_double import TWEETS, Reply


def failed_row(ctx: Any, x_api: Any, reply: Reply | None, text: str = "hello world") -> int:
    """A row that failed the real way: the pipeline's post() got `reply` (or X's own answer)."""
    post_id = schedule_post(ctx.engine, text, ctx.now())
    if reply is not None:
        x_api.script(TWEETS, reply)
    assert post(ctx, post_id).status == "failed"
    return post_id
