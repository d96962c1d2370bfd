"""Project exception types and the rule-script boundary.

Every problem a user can fix is raised as :class:`OmixError` (or a subclass) carrying the file,
the location (row/column/key) and what to do.  Rule scripts run their one library call inside
:func:`rule_boundary`, which turns such an error into a single line on stderr and in the rule log
and exits non-zero, so the user never sees a library traceback for bad input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("omix")


class OmixError(Exception):
    """A problem the user can act on: bad config, bad table, impossible analysis request."""

    def __init__(self, what: str, *, file: str | os.PathLike[str] | None = None,
                 where: str | None = None, hint: str | None = None) -> None:
        self.file = None if file is None else str(file)
        self.where = where
        self.what = what
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.file, self.where) if p]
        head = ": ".join(parts)
        msg = f"{head}: {self.what}" if head else self.what
        if self.hint:
            msg = f"{msg.rstrip('.')}. {self.hint[:1].upper()}{self.hint[1:]}"
        return " ".join(msg.split())  # one line, whatever the pieces held


class ConfigError(OmixError):
    """The config file or the sample sheet is invalid."""


class InputDataError(OmixError):
    """An omic table cannot be used as given."""


class AnalysisError(OmixError):
    """The data are valid but the requested analysis cannot be done on them."""


def warn_user(message: str) -> None:
    """A warning the user must see: in the rule's log and on the terminal (one line)."""
    log.warning(message)
    print(f"WARNING {' '.join(message.split())}", file=sys.__stderr__, flush=True)


def eta(seconds: float) -> str:
    """A remaining time as a person reads it: '~40 s', '~3 min', '~1.5 h'."""
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def progress(logger: logging.Logger, message: str, *args: Any) -> None:
    """A progress line of a long step (what, how far, how long): in the rule's log and on
    the terminal, where Snakemake's own output is."""
    logger.info(message, *args)
    if _TERMINAL_PROGRESS:
        print(f"  {message % args if args else message}", file=sys.__stderr__, flush=True)


_TERMINAL_PROGRESS = False  # set by rule_boundary: only rule jobs write to the terminal


class Ticker:
    """Progress of a loop over ``total`` units whose length the loop knows, e.g.
    ``reading meth.csv: 120,000/450,000 rows (27 %), ~1 min left``: a :func:`progress` line
    at most every ``every`` seconds, none for a loop that ends sooner."""

    def __init__(self, logger: logging.Logger, what: str, total: int, unit: str,
                 every: float = 10.0) -> None:
        self.logger, self.what, self.total, self.unit, self.every = (logger, what, total,
                                                                     unit, every)
        self.t0 = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every or not 0 < done < self.total:
            return
        self.last = now
        progress(self.logger, "%s: %s/%s %s (%d %%), %s left", self.what, f"{done:,}",
                 f"{self.total:,}", self.unit, 100 * done // self.total,
                 eta((now - self.t0) / done * (self.total - done)))


class Stopwatch:
    """Progress of a step made of a few phases whose lengths are not known ahead, e.g.
    ``cluster: kNN graph done (phase 1/4, 12 s so far; next: Leiden at 11 resolutions)``:
    a :func:`progress` line after each phase once the step has run ``after`` seconds."""

    def __init__(self, logger: logging.Logger, what: str, total: int,
                 after: float = 5.0) -> None:
        self.logger, self.what, self.total, self.after = logger, what, total, after
        self.t0 = time.monotonic()
        self.n = 0

    def done(self, phase: str, following: str | None = None) -> None:
        self.n += 1
        spent = time.monotonic() - self.t0
        if spent >= self.after:
            progress(self.logger, "%s: %s done (phase %d/%d, %.0f s so far%s)", self.what,
                     phase, self.n, self.total, spent,
                     f"; next: {following}" if following else "")


def setup_logging(log_file: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Send the ``omix`` logger to ``log_file`` (and warnings to stderr)."""
    root = logging.getLogger("omix")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, mode="a")
        fh.setFormatter(fmt)
        root.addHandler(fh)
    else:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        root.addHandler(sh)
    root.propagate = False


def current_log_file() -> str | None:
    """The file the ``omix`` logger writes to (see :func:`setup_logging`), if any."""
    return next((h.baseFilename for h in logging.getLogger("omix").handlers
                 if isinstance(h, logging.FileHandler)), None)


@contextlib.contextmanager
def into_log(log_file: str | os.PathLike[str]) -> Iterator[None]:
    """For a worker process a rule starts: the ``omix`` logger and stdout/stderr go to the
    rule's log, as :func:`rule_boundary` arranges in the rule's own process; progress lines
    stay off the terminal (a forked worker inherits the rule process's setting)."""
    global _TERMINAL_PROGRESS
    _TERMINAL_PROGRESS = False
    setup_logging(log_file)
    with open(log_file, "a") as stream, contextlib.redirect_stdout(stream), \
            contextlib.redirect_stderr(stream):
        yield


@contextlib.contextmanager
def rule_boundary(snakemake: Any) -> Iterator[None]:
    """Run a rule script's library call with logging set up and errors made readable.

    Python warnings, library chatter on stdout/stderr and the ``omix`` logger all go to the rule's
    log file.  An :class:`OmixError` becomes one line on the terminal and in the log, exit code 1.
    Unexpected exceptions keep their traceback, in the log only, plus a one-line pointer to it.
    """
    log_files = list(getattr(snakemake, "log", []) or [])
    log_file = log_files[0] if log_files else None
    setup_logging(log_file)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").handlers = logging.getLogger("omix").handlers
    rule = getattr(snakemake, "rule", "rule")
    terminal = sys.__stderr__
    global _TERMINAL_PROGRESS
    _TERMINAL_PROGRESS = True
    stream = open(log_file, "a") if log_file else None  # noqa: SIM115 - closed below
    try:
        with contextlib.ExitStack() as stack:
            if stream is not None:
                stack.enter_context(contextlib.redirect_stdout(stream))
                stack.enter_context(contextlib.redirect_stderr(stream))
            threads = getattr(snakemake, "threads", None)
            if threads:  # BLAS threads follow the rule's threads: results depend on them
                from threadpoolctl import threadpool_limits

                stack.enter_context(threadpool_limits(limits=int(threads)))
            try:
                yield
            except OmixError as err:
                line = f"ERROR [{rule}] {err.one_line()}"
                log.error(err.one_line())
                if stream is not None:
                    stream.flush()
                print(line, file=terminal, flush=True)
                raise SystemExit(1) from None
            except Exception:
                log.exception("unexpected failure")
                where = f"; full traceback in {log_file}" if log_file else ""
                print(f"ERROR [{rule}] unexpected internal error{where}",
                      file=terminal, flush=True)
                raise SystemExit(1) from None
    finally:
        if stream is not None:
            stream.close()
