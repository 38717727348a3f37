"""stderr for journald: `<priority>` prefixes and no timestamp, only when fd 2 really is the journal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SNIPPET = """
import logging, sys
from pathlib import Path
from utils.logging_setup import setup_logging
setup_logging(Path(sys.argv[1]), "INFO")
log = logging.getLogger("autonomiq")
log.info("started")
log.warning("disk low")
log.error("job failed\\nsecond line")
"""


def run_with_stderr_file(tmp_path: Path, journal_stream: str | None) -> str:
    err_path = tmp_path / "stderr.txt"
    with err_path.open("wb") as err:
        info = os.fstat(err.fileno())
        env = {"PATH": os.environ["PATH"]}
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream.format(dev=info.st_dev, ino=info.st_ino)
        subprocess.run([sys.executable, "-c", SNIPPET, str(tmp_path / "logs")], cwd=ROOT, env=env,
                       stderr=err, timeout=30, check=True)
    return err_path.read_text()


def test_under_the_journal_lines_carry_syslog_priorities_and_no_timestamp(tmp_path: Path) -> None:
    text = run_with_stderr_file(tmp_path, "{dev}:{ino}")
    assert text.splitlines() == ["<6>autonomiq: started", "<4>autonomiq: disk low",
                                 "<3>autonomiq: job failed second line"]  # one entry, one line
    # the rotating file keeps its own timestamps
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ",
                    (tmp_path / "logs" / "autonomous_monitor.log").read_text())


def test_a_journal_stream_that_is_not_our_stderr_keeps_the_terminal_format(tmp_path: Path) -> None:
    text = run_with_stderr_file(tmp_path, "1:2")
    assert not text.startswith("<") and re.match(r"\d{4}-\d\d-\d\dT.* INFO autonomiq: started", text)
    assert "<6>" not in run_with_stderr_file(tmp_path, None)


def test_a_multi_line_message_is_one_log_line_and_a_traceback_keeps_its_lines(tmp_path):
    import logging

    from utils.logging_setup import RedactingFormatter

    formatter = RedactingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "could not connect: %s", (
        "connection refused\n\tIs the server running on that host?\n(Background on this error at: …)",),
        None)
    assert formatter.format(record) == ("ERROR could not connect: connection refused Is the server "
                                        "running on that host? (Background on this error at: …)")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert formatter.format(failed).splitlines()[0] == "ERROR failed"
    assert "ValueError: boom" in formatter.format(failed).splitlines()[-1]
