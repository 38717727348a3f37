"""AutonomousMonitor is the registry: what is registered is what sweeps and verification run."""

from __future__ import annotations

from autonomous_monitor import AutonomousMonitor
from checks.base import Check, CheckFailed, Passed
from recovery.base import FixOutcome, Routine
from utils.config import load_settings


def test_a_check_and_fixer_registered_at_run_time_are_swept_fixed_and_verified(env, clock):
    monitor = AutonomousMonitor.from_settings(load_settings(env), clock=clock)
    fixed_targets: list[str] = []
    broken = {"now": True}

    def queue_check(ctx) -> Passed:
        if broken["now"]:
            raise CheckFailed("queue stalled", failure_class="queue_stalled")
        return Passed("queue moving")

    def restart_queue(ctx, target) -> FixOutcome:
        fixed_targets.append(target.name)
        broken["now"] = False
        return FixOutcome("fixed", "queue restarted")

    monitor.register_check("queue", Check("queue", queue_check, every_sweep=True))
    monitor.register_fixer("restart_queue", Routine("restart_queue", restart_queue,
                                                    lambda ctx, target: "restart the queue",
                                                    verify_check="queue"),
                           failure_classes=["queue_stalled"])
    try:
        report = monitor.run_sweep()
    finally:
        monitor.close()
    assert fixed_targets == ["check:queue"]
    [action] = [a for a in report.actions if a.routine == "restart_queue"]
    # Verified by re-running the registered check, which the fix made pass.
    assert action.outcome == "fixed" and action.verified is True and "queue moving" in action.detail


def test_a_plain_function_check_runs_in_health_rounds_but_not_in_sweeps(env, clock):
    monitor = AutonomousMonitor.from_settings(load_settings(env), clock=clock)
    calls: list[str] = []
    monitor.register_check("costly", lambda ctx: calls.append("ran") or Passed("fine"))
    try:
        monitor.run_sweep()
        assert calls == []
        results = monitor.run_health_round("manual", names=["costly"])
    finally:
        monitor.close()
    assert calls == ["ran"] and [r.name for r in results] == ["costly"]


def test_a_replaced_playbook_routine_runs_instead_of_the_built_in_one(env, clock):
    monitor = AutonomousMonitor.from_settings(load_settings(env), clock=clock)
    seen: list[str] = []

    def my_cleanup(ctx, target) -> FixOutcome:
        seen.append(target.failure_class)
        return FixOutcome("skipped", "my own cleanup decided to wait")

    monitor.register_fixer("cleanup_disk", Routine("cleanup_disk", my_cleanup, lambda c, t: "clean"))
    monitor.register_check("disk_space", Check("disk_space", lambda ctx: (_ for _ in ()).throw(
        CheckFailed("0.1 GB free", failure_class="disk")), every_sweep=True))
    try:
        report = monitor.run_sweep()
    finally:
        monitor.close()
    assert seen == ["disk"]
    details = [a.detail for a in report.actions if a.routine == "cleanup_disk"]
    assert details == ["my own cleanup decided to wait"]


def test_only_cheap_checks_that_spend_no_x_budget_run_on_every_sweep():
    from checks import CHECKS

    sweep = {name for name, check in CHECKS.items() if check.every_sweep}
    assert sweep == {"database", "disk_space", "scheduler"}
    assert not any(CHECKS[name].spends_x_budget for name in sweep)
    assert CHECKS["twitter_api"].spends_x_budget
