"""Logging: a rotating file under LOG_DIR, stderr (journal-aware), every line redacted."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from utils.redact import redact

MAIN_LOG = "autonomous_monitor.log"
FAILURE_LOG = "post_failures.log"
FAILURE_LOGGER = "autonomiq.post_failures"
_MAX_BYTES = 5 * 1024 * 1024
_BACKUPS = 5

# syslog priorities, as systemd-journald reads them from a "<N>" line prefix
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks secrets in the whole line, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JournalFormatter(RedactingFormatter):
    """`<priority>logger: message` with no timestamp: journald adds its own."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def stderr_is_journal() -> bool:
    """systemd's own test: JOURNAL_STREAM equals `<st_dev>:<st_ino>` of file descriptor 2."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(2)
    except OSError:
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


def setup_logging(log_dir: Path, level: str = "INFO", *, stderr_level: str | None = None) -> None:
    """Route all logging to LOG_DIR files and stderr (at `stderr_level`, default `level`)."""
    root = logging.getLogger()
    for owner in (root, logging.getLogger(FAILURE_LOGGER)):
        for handler in list(owner.handlers):
            owner.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    file_format = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        main = logging.handlers.RotatingFileHandler(
            log_dir / MAIN_LOG, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8")
        main.setFormatter(file_format)
        root.addHandler(main)
        failures = logging.handlers.RotatingFileHandler(
            log_dir / FAILURE_LOG, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8")
        failures.setFormatter(file_format)
        logging.getLogger(FAILURE_LOGGER).addHandler(failures)
    except OSError as exc:
        print(f"warning: cannot write logs under {log_dir}: {exc}", file=sys.stderr)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(stderr_level or level)
    err.setFormatter(JournalFormatter("%(name)s: %(message)s") if stderr_is_journal()
                     else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(err)
    # Chatty libraries: tweepy logs whole request headers (OAuth) at DEBUG.
    for name in ("tweepy", "urllib3", "apscheduler.executors", "requests_oauthlib"):
        logging.getLogger(name).setLevel(logging.WARNING)


def log_failure(log: logging.Logger, exc: BaseException, message: str, *args: object) -> None:
    """Log a caught failure: an outage of the outside world (database unreachable, disk full,
    connection refused) as one error line, since it repeats every sweep while it lasts; anything
    else, which is a bug, with its traceback."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError | OSError):
        log.error(message + ": %s", *args, f"{type(exc).__name__}: {exc}".splitlines()[0])
    else:
        log.exception(message, *args)
