"""``make bench-workflow``: the whole workflow on synthetic cohorts of the size users bring.

For each N, a scale cohort (:func:`omix.synthetic.write_scale_cohort`: 10,000 features over
RNA counts, proteomics with 10 % scattered missing values and binary mutations; a 5-class
subtype and survival) is written once under ``--workdir`` and the workflow runs on it with
the default config and ``--cores``.  Prints, per N, a table of rules (jobs, summed and
longest wall time, peak RSS, CPU time; from Snakemake's ``benchmark:`` files) and the total
wall time and largest process of the run, as Markdown (the README's table).  Figures only: a
benchmark, not a test.

    python -m omix.workflow_bench --sizes 1000           # about 20 min on 2 cores
    python -m omix.workflow_bench --sizes 200,1000,5000  # the README's table
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[3]


def rule_table(bench_dir: Path) -> pd.DataFrame:
    """Per rule: jobs, summed and longest wall time (s), peak RSS (MB), CPU time (s)."""
    rows = []
    for f in sorted(bench_dir.rglob("*.tsv")):
        rule = f.relative_to(bench_dir).parts[0]
        b = pd.read_csv(f, sep="\t").iloc[-1]
        rows.append({"rule": rule, "wall_s": float(b["s"]), "max_rss_mb": float(b["max_rss"]),
                     "cpu_s": float(b["cpu_time"])})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", "wall_s", "longest_s", "max_rss_mb",
                                     "cpu_s"])
    d = pd.DataFrame(rows)
    return (d.groupby("rule").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"),
                                  longest_s=("wall_s", "max"), max_rss_mb=("max_rss_mb", "max"),
                                  cpu_s=("cpu_s", "sum"))
            .sort_values("wall_s", ascending=False).reset_index())


def run(n: int, workdir: Path, cores: int, fresh: bool) -> tuple[float, float, pd.DataFrame]:
    """Run the workflow on the N-patient scale cohort; (wall s, largest process MB, rules)."""
    d = workdir / f"scale_{n}"
    if not (d / "config.yaml").exists():
        print(f"# writing the {n}-patient scale cohort to {d}", flush=True)
        # in a child process: Linux starts a child's peak RSS (wait4's ru_maxrss) at its
        # parent's peak, so a parent that had held the cohort would inflate Snakemake's
        subprocess.run([sys.executable, "-c", "import sys; from omix.synthetic import "
                        "write_scale_cohort; write_scale_cohort(sys.argv[1], "
                        "n_samples=int(sys.argv[2]))", str(d), str(n)], check=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    if fresh:
        for sub in ("results", "logs", "benchmarks", ".snakemake"):
            shutil.rmtree(d / sub, ignore_errors=True)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(d), "--configfile", str(d / "config.yaml"),
           "--cores", str(cores), "--quiet", "rules"]
    print(f"# N = {n}: {' '.join(cmd[2:])}", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the workflow failed on the {n}-patient cohort; see {d / 'logs'}")
    # the largest process among the run's children (waited for by Snakemake), in MB
    return wall, usage.ru_maxrss / 1024, rule_table(d / "benchmarks")


def markdown(n: int, wall: float, peak_mb: float, rules: pd.DataFrame) -> str:
    lines = [f"N = {n} patients x 10,000 features: {wall / 60:.1f} min wall, largest process "
             f"{peak_mb / 1024:.2f} GB", "",
             "| rule | jobs | wall (s, summed) | longest job (s) | peak RSS (MB) | CPU (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rules.itertuples():
        lines.append(f"| {r.rule} | {r.jobs} | {r.wall_s:.0f} | {r.longest_s:.0f} | "
                     f"{r.max_rss_mb:.0f} | {r.cpu_s:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="200,1000,5000", help="patients per cohort")
    ap.add_argument("--workdir", default="results/workflow_bench",
                    help="where the cohorts and their runs go (kept: a rerun reuses the data)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true",
                    help="keep earlier results (Snakemake then reruns only what is missing)")
    a = ap.parse_args(argv)
    workdir = Path(a.workdir).resolve()
    for n in [int(s) for s in a.sizes.split(",") if s.strip()]:
        wall, peak, rules = run(n, workdir, a.cores, fresh=not a.keep)
        print(markdown(n, wall, peak, rules), flush=True)
        print(flush=True)


if __name__ == "__main__":
    main()
