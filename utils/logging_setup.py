"""Logging: a rotating file under LOG_DIR, stderr (journal-aware), every line redacted."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from datetime import datetime, tzinfo
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


# Libraries that write secrets at DEBUG (oauthlib: the signature base string with the access
# token URL-encoded; tweepy and requests-oauthlib: OAuth headers): WARNING whatever LOG_LEVEL says.
QUIET_LOGGERS = ("tweepy", "urllib3", "apscheduler.executors", "oauthlib", "requests_oauthlib")


class RedactingFormatter(logging.Formatter):
    """Formats as usual (times with their UTC offset, in `zone`; the machine's zone when None),
    then masks secrets in the whole line, traceback included."""

    def __init__(self, fmt: str, zone: tzinfo | None = None) -> None:
        super().__init__(fmt)
        self.zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        moment = datetime.fromtimestamp(record.created, self.zone).astimezone(self.zone)
        return moment.isoformat(timespec="milliseconds")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        # One entry, one line: a driver's multi-line error text would otherwise read as several
        # entries (a traceback, from exc_info, is added after this and keeps its lines).
        if "\n" in record.message:
            record.message = " ".join(line.strip() for line in record.message.splitlines() if line.strip())
        return super().formatMessage(record)

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


def setup_logging(log_dir: Path, level: str = "INFO", *, stderr_level: str | None = None,
                  zone: tzinfo | None = None) -> None:
    """Route all logging to LOG_DIR files and stderr (at `stderr_level`, default `level`), times
    as ISO 8601 with offset in `zone` (MONITOR_TIMEZONE)."""
    root = logging.getLogger()
    for owner in (root, logging.getLogger(FAILURE_LOGGER)):
        for handler in list(owner.handlers):
            owner.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    file_format = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", zone)
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
                     else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", zone))
    root.addHandler(err)
    for name in QUIET_LOGGERS:
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


class OutageLog:
    """Says that `what` fails once until it works again, then once that it works: an outage that
    lasts an hour of sweeps is two log lines, not one a sweep. Safe to share between threads."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log, self.what = log, what
        self._failing = False
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        """Record a failure; logged only when it starts an outage."""
        with self._lock:
            starts, self._failing = not self._failing, True
        if starts:
            self.log.warning("%s failed (said once until it works again): %s", self.what,
                             f"{type(exc).__name__}: {exc}".splitlines()[0][:300])

    def worked(self) -> None:
        """Record a success; logged only when it ends an outage."""
        with self._lock:
            ends, self._failing = self._failing, False
        if ends:
            self.log.info("%s works again", self.what)
