"""Memory of ``predict``'s forked fold workers over the first outer folds.

``python -m omix.fold_memory RUN_DIR [--folds 6] [--workers 2]``

RUN_DIR is a finished workflow directory (its ``config.yaml`` and ``results/<cohort>/``, e.g.
one of ``omix.workflow_bench``'s).  The first ``--folds`` outer folds of the rule's nested
cross-validation run as the rule runs them (``predict._mofa_folds`` with the candidates'
task, forked workers); a thread samples every child's resident and proportional set size
(``/proc/<pid>/smaps_rollup``) every 0.5 s; children that were there before (a library's
idle workers) are not counted.  Prints, per finished fold, each worker's memory
at that moment, then every process's peak.  Linux only.  A benchmark, not a test: it prints
figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from . import predict as pr
from .mofa import MofaOptions
from .predict_bench import ClassRun


def rollup(pid: int) -> dict[str, float]:
    """RSS and PSS of a process in MB, from ``/proc/<pid>/smaps_rollup`` ({} if gone)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] in ("Rss:", "Pss:"):
                out[parts[0][:-1]] = int(parts[1]) / 1024
    return out


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{p}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p))
    return out


class _First:
    """The first ``k`` splits of a splitter."""

    def __init__(self, splitter: Any, k: int) -> None:
        self.splitter, self.k = splitter, k

    def split(self, x: Any, y: Any) -> Any:
        for i, s in enumerate(self.splitter.split(x, y)):
            if i >= self.k:
                return
            yield s


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    out = sys.stdout   # MOFA+'s chatter goes to /dev/null (below), the figures here
    run = ClassRun.load(a.run_dir)
    cfg, opts, samples, yy = run.cfg, run.opts, run.samples, run.yy
    splitter, _, _ = pr.outer_splits(samples, yy, opts, None)
    task = partial(pr._candidates_task, y=pd.Series(yy, index=samples), kind="classification",
                   models=list(opts.models), n_classes=len(set(yy)), opts=opts)
    me = os.getpid()
    others = set(children(me))   # e.g. joblib's idle workers: not the folds'

    def workers() -> list[int]:
        return [pid for pid in children(me) if pid not in others]

    peak: dict[int, dict[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in [*workers(), me]:
                r = rollup(pid)
                if r:
                    p = peak.setdefault(pid, {"Rss": 0.0, "Pss": 0.0})
                    for key in p:
                        p[key] = max(p[key], r.get(key, 0.0))
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.monotonic()
    folds = pr._mofa_folds(samples, yy, _First(splitter, a.folds), run.fd,
                           MofaOptions.from_config(dict(cfg.get("integrate") or {})),
                           a.workers, task)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        for i, _ in enumerate(folds):
            now = {pid: rollup(pid) for pid in workers()}
            print(f"fold {i + 1} done at {time.monotonic() - t0:.0f} s; workers now: "
                  + ", ".join(f"{pid} RSS {r.get('Rss', 0):.0f} MB, PSS {r.get('Pss', 0):.0f} MB"
                              for pid, r in now.items()), file=out, flush=True)
    stop.set()
    for pid, p in peak.items():
        print(f"peak of {pid}{' (the parent)' if pid == me else ''}: RSS {p['Rss']:.0f} MB, "
              f"PSS {p['Pss']:.0f} MB", file=out)
    print(f"{a.folds} folds, {a.workers} workers: {time.monotonic() - t0:.0f} s", file=out)


if __name__ == "__main__":
    main()
