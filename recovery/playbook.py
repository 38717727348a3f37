"""The playbook: one record per failure class — the routines that handle it, what the monitor
says it does (only when such a routine is configured and allowed to run), and what a person must
do — used both by the sweep (PLAYBOOK, ROUTINES) and by the alert wording (notify/messages.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recovery.base import Routine
from recovery.routines import (
    cleanup_disk,
    give_up,
    hold_for_usage_cap,
    post_missed,
    reconnect_database,
    refresh_credentials,
    release_stuck_post,
    resolve_duplicate,
    restart_scheduler,
    retry_after_rate_limit,
    retry_due_post,
    retry_transient,
)
from utils.failure_classes import FailureClass as F

if TYPE_CHECKING:
    from utils.config import Settings


@dataclass(frozen=True)
class Play:
    """What the system knows about one failure class."""

    routines: tuple[Routine, ...]
    does: str = ""                       # what the monitor does, said only when it can run now
    human: str | None = None             # what a person must do (a routine's own advice wins)
    to_change: str | None = None         # a given-up post: what to change before rescheduling it
    configured: Callable[[Settings], bool] | None = None  # None: needs no setting
    severity: str = "warning"            # of an incident found in a log or the ledger
    title: str | None = None             # its incident's name when no post or check names it


def _restart_configured(settings: Settings) -> bool:
    return bool(settings.scheduler_service or settings.scheduler_restart_command)


def _credentials_configured(settings: Settings) -> bool:
    return bool(settings.twitter_client_id and settings.twitter_oauth2_refresh_token)


_TRANSIENT = "check X's status page and the pipeline's network (MAX_POST_ATTEMPTS were spent)"
PLAYS: dict[str, Play] = {
    F.RATE_LIMIT: Play((retry_after_rate_limit.ROUTINE,),
                       does="waits for X's rate-limit reset, then posts it again"),
    F.USAGE_CAP: Play((hold_for_usage_cap.ROUTINE,), severity="critical",
                      does="holds posting until the cap resets, then posts what waited",
                      human="the X API cap or credits are used up: wait for the reset or raise the plan"),
    F.AUTH: Play((refresh_credentials.ROUTINE,), does="refreshes the OAuth 2 token", severity="critical",
                 human="regenerate the X access token and secret in the developer portal, put them "
                       "in .env and restart the monitor",
                 configured=_credentials_configured),
    F.DUPLICATE: Play((resolve_duplicate.ROUTINE,),
                      does="looks for the tweet on the account and marks the post as posted if found",
                      human="change the post text: X refuses identical content"),
    F.SERVER_ERROR: Play((retry_transient.ROUTINE,),
                         does="posts it again with backoff (at most MAX_POST_ATTEMPTS attempts)",
                         to_change=_TRANSIENT),
    F.NETWORK: Play((retry_transient.ROUTINE,),
                    does="waits for the internet, then posts it again with backoff",
                    human="check this machine's internet connection and DNS", to_change=_TRANSIENT),
    F.TIMEOUT: Play((retry_transient.ROUTINE,),
                    does="checks whether the post went out, then posts it again with backoff",
                    to_change=_TRANSIENT),
    F.PERMISSION: Play((give_up.ROUTINE,), severity="critical",
                       human="set the X app to Read and Write, then regenerate the access token",
                       to_change="set the app's permissions to Read and Write in the X developer "
                                 "portal, regenerate the access token and secret and put them in "
                                 ".env (the app must be in a Project; the account must not be "
                                 "suspended or locked)"),
    F.INVALID_REQUEST: Play((give_up.ROUTINE,), human="fix the post in the ledger (too long or invalid)",
                            to_change="fix the text (X rejected it: too long or malformed)"),
    F.NOT_FOUND: Play((give_up.ROUTINE,), human="check TWITTER_API_BASE_URL and the post's reply target",
                      to_change="check TWITTER_API_BASE_URL and any reply/quote target of the post"),
    F.DATABASE: Play((reconnect_database.ROUTINE,), does="reconnects to the database", severity="critical",
                     human="check the database server is up and DATABASE_URL is right"),
    F.DISK: Play((cleanup_disk.ROUTINE,), does="deletes old rotated logs and temp files (CLEANUP_PATHS)",
                 human="free space on that disk (old logs, caches) or enlarge it"),
    F.SCHEDULER: Play((restart_scheduler.ROUTINE,), does="restarts the scheduler", severity="critical",
                      human="check the pipeline's scheduler (its service status and logs) and start "
                            "it; set SCHEDULER_SERVICE or SCHEDULER_RESTART_COMMAND to let the "
                            "monitor restart it",
                      configured=_restart_configured),
    F.BAD_ROW: Play((), title="unreadable rows in the posts ledger",
                    does="skips those rows on every sweep and goes on with the others",
                    human="fix or delete the rows the detail names: as they are, they never post"),
    F.SAFE_MODE: Play((), severity="critical", title="safe mode",
                      does="keeps checking, recording and alerting, and runs no fix and no post retry",
                      human="look at LAST ACTIONS in `status` for what kept failing, deal with it, then "
                            "run `python autonomous_monitor.py resume`"),
    # `unknown` has no routine on purpose: an honest "don't know" is reported, never retried blindly.
    F.UNKNOWN: Play((), human="read the error in the pipeline's log and fix the cause"),
}
# Concrete remedies that beat the class's generic one, matched on the error text.
SPECIFIC: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (F.PERMISSION, re.compile(r"\b453\b|access to a subset of (?:X|Twitter) API", re.I),
     "the pipeline calls an endpoint its X access level does not include (code 453, usually "
     "v1.1 statuses/update on the Free tier): make it post with the v2 endpoint POST /2/tweets "
     "(tweepy Client.create_tweet), or move the app to a plan that includes the endpoint"),
    (F.PERMISSION, re.compile(r"\b326\b|temporarily locked", re.I),
     "log in to the X account in a browser and complete the unlock challenge"),
    (F.PERMISSION, re.compile(r"\b64\b|suspended", re.I),
     "the X account is suspended: appeal in the X help centre; nothing posts until it is lifted"),
    (F.PERMISSION, re.compile(r"\b226\b|might be automated", re.I),
     "X flagged the post as automated: label the account as automated in its settings and "
     "vary the text"),
)

# Per check: what the monitor does about a failing check, whatever the class (the class's routines
# act on posts; these checks are re-run, not repaired).
CHECK_STEPS = {
    "twitter_api": "re-checks the X API about every 15 min while this lasts (never spending the "
                   "calls kept for posting); failed posts are retried on their own",
    "internet": "re-checks the connection on every sweep; failed posts are retried once it is back",
}

PLAYBOOK: dict[str, tuple[Routine, ...]] = {cls: play.routines for cls, play in PLAYS.items()}
# Ledger states that are not failures but still need a routine.
MISSED_POST = post_missed.ROUTINE
DUE_RETRY = retry_due_post.ROUTINE
STUCK_POST = release_stuck_post.ROUTINE

# Every routine by name (registered as the monitor's fixers).
ROUTINES: dict[str, Routine] = {
    routine.name: routine
    for routine in (*(r for routines in PLAYBOOK.values() for r in routines), MISSED_POST, DUE_RETRY,
                    STUCK_POST)
}


def play(failure_class: str | None) -> Play:
    """The record for `failure_class` (the `unknown` one for anything else)."""
    return PLAYS.get(failure_class or "", PLAYS[F.UNKNOWN])


def specific_remedy(failure_class: str | None, error: str) -> str | None:
    """The concrete remedy for this error text, when one is known."""
    return next((text for cls, pattern, text in SPECIFIC
                 if cls == failure_class and pattern.search(error or "")), None)


def what_to_change(failure_class: str | None, error: str) -> str:
    """For a post given up: what must change before it is rescheduled."""
    record = play(failure_class)
    return (specific_remedy(failure_class, error) or record.to_change or record.human
            or "fix the cause named above")


def monitor_step(failure_class: str | None, settings: Settings, held_back: set[str],
                 check: str | None = None) -> str | None:
    """What the monitor says it does: the `check`'s own step, else only when the class has a
    routine that is configured and not `held_back` (blocked by the circuit breaker); None when it
    cannot act by itself."""
    if check in CHECK_STEPS:
        return CHECK_STEPS[check]
    record = play(failure_class)
    runnable = [r for r in record.routines if r.name not in held_back and r.name != give_up.NAME]
    if not record.does or not runnable:
        return None
    if record.configured is not None and not record.configured(settings):
        return None
    return f"{record.does} (DRY_RUN: only says what it would do)" if settings.dry_run else record.does


def human_step(failure_class: str | None, error: str = "", advice: str | None = None) -> str | None:
    """What a person must do: a routine's own `advice` first, then a remedy specific to the error,
    then the class's generic step."""
    return advice or specific_remedy(failure_class, error) or play(failure_class).human
