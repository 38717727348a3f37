"""Failure classes: the constants shared by the classifier, the playbook and the checks."""

from __future__ import annotations

import enum


class FailureClass(enum.StrEnum):
    """Why something failed; each value selects a recovery routine in the playbook."""

    RATE_LIMIT = "rate_limit"
    USAGE_CAP = "usage_cap"
    AUTH = "auth"
    PERMISSION = "permission"
    DUPLICATE = "duplicate"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    SERVER_ERROR = "server_error"
    NETWORK = "network"
    TIMEOUT = "timeout"
    DATABASE = "database"
    DISK = "disk"
    SCHEDULER = "scheduler"  # the pipeline's scheduler is down (from the `scheduler` check)
    SAFE_MODE = "safe_mode"  # the monitor stopped acting: the hour's action budget is spent
    BAD_ROW = "bad_row"      # a ledger row the sweep cannot read (a timestamp, a NULL text …)
    UNKNOWN = "unknown"


# An attempt that failed this way may have reached X: the tweet can exist (exactly-once matters).
AMBIGUOUS = frozenset({FailureClass.TIMEOUT, FailureClass.NETWORK, FailureClass.SERVER_ERROR})
