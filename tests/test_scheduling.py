"""Pre-posting trigger times (DST-safe), bounded jobs, and job events that are never silent."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from daemon.scheduling import BoundedJob, DailyTrigger, JobStats, precheck_times, watch_job_events

BERLIN = ZoneInfo("Europe/Berlin")


def fire_times(trigger: DailyTrigger, start: datetime, days: int) -> list[datetime]:
    """What the scheduler would run: each next fire time computed from the previous one."""
    times, previous, now = [], None, start
    end = datetime.combine(start.astimezone(trigger.timezone).date() + timedelta(days=days),
                           clock_time(0), tzinfo=trigger.timezone)  # local midnight, DST or not
    while True:
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None or nxt >= end:
            return times
        times.append(nxt)
        previous, now = nxt, nxt + timedelta(seconds=1)  # the job ran; the scheduler asks again


def test_precheck_times_are_the_lead_before_each_posting_time_wrapping_midnight() -> None:
    assert precheck_times([clock_time(9), clock_time(15)], 60) == [clock_time(8), clock_time(14)]
    assert precheck_times([clock_time(0, 30)], 60) == [clock_time(23, 30)]
    assert precheck_times([clock_time(9), clock_time(9, 30)], 30) == [clock_time(8, 30), clock_time(9)]
    assert precheck_times([clock_time(9), clock_time(10)], 0) == [clock_time(9), clock_time(10)]


@pytest.mark.parametrize("at", [clock_time(2, 30), clock_time(2, 0), clock_time(3, 0),
                                clock_time(8, 0), clock_time(14, 0), clock_time(23, 30)])
@pytest.mark.parametrize("start", [datetime(2026, 3, 26, tzinfo=BERLIN),
                                   datetime(2026, 10, 22, tzinfo=BERLIN)])
def test_berlin_dst_changes_neither_skip_nor_double_a_check(at: clock_time, start: datetime) -> None:
    times = fire_times(DailyTrigger(at, BERLIN), start.astimezone(UTC), days=7)
    local_days = [t.astimezone(BERLIN).date() for t in times]
    assert local_days == [start.date() + timedelta(days=i) for i in range(7)]  # one per day, none missing
    assert times == sorted(set(times))
    for moment in times:
        local = moment.astimezone(BERLIN)
        on_gap_day = local.date() == date(2026, 3, 29) and clock_time(2) <= at < clock_time(3)
        if on_gap_day:  # 02:xx does not exist that night: it runs one hour later, 03:xx summer time
            assert (local.hour, local.minute) == (at.hour + 1, at.minute)
        else:
            assert (local.hour, local.minute) == (at.hour, at.minute)


def test_a_time_the_clock_passes_twice_fires_on_its_first_pass() -> None:
    times = fire_times(DailyTrigger(clock_time(2, 30), BERLIN), datetime(2026, 10, 25, tzinfo=UTC), 1)
    assert [t.astimezone(UTC) for t in times] == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # 02:30 CEST


def test_after_a_sleep_the_missed_fire_time_is_reported_for_the_grace_check() -> None:
    trigger = DailyTrigger(clock_time(8), BERLIN)
    previous = datetime(2026, 11, 27, 8, tzinfo=BERLIN)
    woke = datetime(2026, 11, 28, 8, 20, tzinfo=BERLIN)
    # APScheduler asks with `now` after the missed run: the trigger must return that run, not skip it
    assert trigger.get_next_fire_time(previous, woke) == datetime(2026, 11, 28, 8, tzinfo=BERLIN)


def _job(work, stats: JobStats, done: list, timeout_s: float = 2.0,
         abandon: threading.Event | None = None) -> BoundedJob:
    return BoundedJob("demo", work, stats=stats, timeout_s=timeout_s, clock=lambda: datetime.now(UTC),
                      abandon=abandon or threading.Event(),
                      on_done=lambda job_id, outcome, detail: done.append((outcome, detail)))


def test_bounded_job_records_success_and_error(caplog: pytest.LogCaptureFixture) -> None:
    stats, done = JobStats(), []
    _job(lambda: "all good", stats, done)()
    _job(lambda: int("not a number"), stats, done)()
    assert done[0] == ("ok", "all good")
    assert done[1][0] == "error" and "ValueError" in done[1][1]
    record = stats.snapshot()["demo"]
    assert (record["succeeded"], record["errors"]) == (1, 1)
    assert any(r.levelname == "ERROR" and "job demo failed" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_an_overrun_is_counted_and_later_runs_are_skipped_loudly_until_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    stats, done, release = JobStats(), [], threading.Event()
    job = _job(lambda: release.wait(10) and "finished late", stats, done, timeout_s=0.3)
    started = time.monotonic()
    job()
    assert time.monotonic() - started < 2
    assert done[-1][0] == "timeout" and job.running
    job()  # the next run while the first one is still busy
    assert done[-1] == ("skipped", "previous run still busy")
    release.set()
    assert job.wait(2)
    job()  # the slot is free again: this run is not skipped
    assert done[-1] == ("ok", "finished late")
    record = stats.snapshot()["demo"]
    assert (record["timeouts"], record["skipped"], record["succeeded"]) == (1, 1, 1)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("overran" in m for m in errors) and any("skipped" in m for m in errors)


def test_a_job_waiting_at_shutdown_is_abandoned_at_once() -> None:
    stats, done, abandon = JobStats(), [], threading.Event()
    job = _job(lambda: threading.Event().wait(10) and "never", stats, done, timeout_s=30, abandon=abandon)
    threading.Timer(0.2, abandon.set).start()
    started = time.monotonic()
    job()
    assert time.monotonic() - started < 2
    assert done[-1][0] == "abandoned"


def test_job_errors_misses_and_max_instances_are_logged_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    stats = JobStats()
    scheduler = BackgroundScheduler(timezone=UTC)
    watch_job_events(scheduler, stats)
    busy = threading.Event()

    def raises() -> None:
        raise RuntimeError("boom")

    now = datetime.now(UTC)
    scheduler.add_job(raises, "date", run_date=now, id="raises")
    scheduler.add_job(print, "date", run_date=now - timedelta(minutes=5), id="late", misfire_grace_time=1)
    scheduler.add_job(lambda: busy.wait(3), "interval", seconds=0.2, id="busy", max_instances=1,
                      next_run_time=now)
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = stats.snapshot()
            if {"raises", "late", "busy"} <= seen.keys() and seen["busy"]["skipped"]:
                break
            time.sleep(0.05)
    finally:
        busy.set()
        scheduler.shutdown(wait=True)
    seen = stats.snapshot()
    assert seen["raises"]["errors"] == 1
    assert seen["late"]["missed"] == 1
    assert seen["busy"]["skipped"] >= 1
    levels = Counter(r.levelname for r in caplog.records if r.name == "daemon.scheduling")
    assert levels["ERROR"] >= 3


NEW_YORK = ZoneInfo("America/New_York")


def elapsed(earlier: datetime, later: datetime) -> timedelta:
    """Real time between two instants (Python subtracts two times of one zone by wall clock)."""
    return later.astimezone(UTC) - earlier.astimezone(UTC)


def test_the_lead_is_real_elapsed_time_across_a_dst_change() -> None:
    # Posting at 03:30 on the spring-forward night in Berlin (02:00 → 03:00): a 60-minute lead
    # runs the pre-check at 01:30 CET, one real hour before 03:30 CEST, not "02:30" (which does
    # not exist and used to become 03:30: no lead at all).
    trigger = DailyTrigger(clock_time(3, 30), BERLIN, timedelta(minutes=60))
    times = fire_times(trigger, datetime(2026, 3, 28, 12, tzinfo=UTC), days=2)
    posting = datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
    assert elapsed(times[0], posting) == timedelta(hours=1)
    assert times[0].astimezone(UTC) == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    # and when the clocks go back (03:00 → 02:00), 03:30 minus one real hour is 02:30 CET, the
    # second pass of that wall time, still exactly one hour before the post
    autumn = fire_times(trigger, datetime(2026, 10, 24, 12, tzinfo=UTC), days=3)
    assert elapsed(autumn[0], datetime(2026, 10, 25, 3, 30, tzinfo=BERLIN)) == timedelta(hours=1)
    assert autumn[0].fold == 1 and autumn[0].strftime("%H:%M") == "02:30"
    assert elapsed(autumn[0], autumn[1]) == timedelta(hours=24)  # the day after: 02:30 CET again


def test_a_daemon_started_in_the_repeated_hour_does_not_fire_at_once() -> None:
    # New York falls back at 02:00 EDT → 01:00 EST on 2026-11-01. The 01:30 check ran at 01:30
    # EDT (05:30 UTC); a daemon started at 01:15 EST (06:15 UTC, the second pass) must wait for
    # tomorrow, not fire now because 01:30 > 01:15 on the wall clock.
    trigger = DailyTrigger(clock_time(1, 30), NEW_YORK)
    started = datetime(2026, 11, 1, 6, 15, tzinfo=UTC).astimezone(NEW_YORK)
    assert started.fold == 1 and started.strftime("%H:%M") == "01:15"
    following = trigger.get_next_fire_time(None, started)
    assert following is not None and following.astimezone(UTC) == datetime(2026, 11, 2, 6, 30, tzinfo=UTC)
    assert following > started


@pytest.mark.slow
def test_a_stuck_worker_is_reported_past_its_bound_only() -> None:
    stats, done, release = JobStats(), [], threading.Event()
    job = _job(lambda: release.wait(10) and "late", stats, done, timeout_s=0.3)
    runner = threading.Thread(target=job)
    runner.start()
    time.sleep(0.1)
    assert job.running and job.stuck_for() is None  # busy, within its bound
    runner.join(2)
    time.sleep(0.1)
    assert (job.stuck_for() or 0) > 0  # past its bound, still busy
    release.set()
    job.wait(2)
    assert job.stuck_for() is None


@pytest.mark.slow
def test_skipped_runs_are_one_error_line_per_streak_and_misses_are_handed_on(
        caplog: pytest.LogCaptureFixture) -> None:
    stats, missed = JobStats(), []
    scheduler = BackgroundScheduler(timezone=UTC)
    watch_job_events(scheduler, stats, lambda job_id, at: missed.append((job_id, at)))
    busy = threading.Event()
    now = datetime.now(UTC)
    scheduler.add_job(print, "date", run_date=now - timedelta(minutes=5), id="pre_posting_0800",
                      misfire_grace_time=1)
    scheduler.add_job(lambda: busy.wait(3), "interval", seconds=0.1, id="busy", max_instances=1,
                      next_run_time=now)
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and stats.snapshot().get("busy", {}).get("skipped", 0) < 4:
            time.sleep(0.05)
    finally:
        busy.set()
        scheduler.shutdown(wait=True)
    assert stats.snapshot()["busy"]["skipped"] >= 4
    skip_errors = [r for r in caplog.records if r.levelname == "ERROR" and "skipped" in r.getMessage()]
    assert len(skip_errors) == 1, [r.getMessage() for r in skip_errors]
    assert [job_id for job_id, _ in missed] == ["pre_posting_0800"]
