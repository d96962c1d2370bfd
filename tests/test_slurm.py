"""profiles/slurm on a real single-node SLURM (tests/cluster/slurm.sh), as CI runs it.

Skipped, with the reason in pytest's summary, when SLURM is not installed (`.ci/run` installs it
when it runs as root with apt-get).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, copy_cohort, snakemake_env

pytestmark = pytest.mark.slow  # make test-all (CI) runs it; make test does not

SCRIPT = ROOT / "tests" / "cluster" / "slurm.sh"
COMPARED = ("biomarkers/ranked.tsv", "clusters.tsv", "mofa/factors.tsv",
            "mofa/variance_explained.tsv", "clusters_vs_outcome.tsv", "qc/sample_overlap.tsv")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "SLURM test skipped: not root (daemons and /etc/slurm need root)"
    missing = [b for b in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch")
               if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return ("SLURM test skipped: not installed (" + ", ".join(missing) + "); run "
                "`tests/cluster/slurm.sh install` as root")
    return None


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    # the daemons run as munge and mysql: their directory must be reachable by those users,
    # which pytest's private tmp_path is not
    d = Path(tempfile.mkdtemp(prefix="omix-slurm-", dir="/tmp"))
    d.chmod(0o755)
    try:
        up = subprocess.run(["bash", str(SCRIPT), "up", str(d)], capture_output=True,
                            text=True, timeout=180)
        assert up.returncode == 0, up.stderr + "".join(
            p.read_text()[-800:] for p in (d / "log").glob("*.log"))
        yield snakemake_env(SLURM_CONF=str(d / "slurm.conf"))
    finally:  # also when starting failed half-way
        subprocess.run(["bash", str(SCRIPT), "down", str(d)], timeout=120)
        shutil.rmtree(d, ignore_errors=True)


def run_on_slurm(work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = ["timeout", "-k", "10", "600", str(Path(env["PATH"].split(":")[0]) / "snakemake"),
           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--profile", str(ROOT / "profiles/slurm"),
           "--workflow-profile", str(ROOT / "tests/cluster/profile")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=660)


def sacct(env: dict[str, str], run_id: str) -> list[dict[str, str]]:
    out = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", "--name", run_id,
                          "-o", "JobID,Comment,State,ExitCode"], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout
    rows = [dict(zip(["id", "comment", "state", "exit"], ln.split("|"), strict=True))
            for ln in out.splitlines() if ln]
    return rows


def run_id_of(proc: subprocess.CompletedProcess[str]) -> str:
    m = re.search(r"SLURM run ID: (\S+)", proc.stdout + proc.stderr)
    assert m, (proc.stdout + proc.stderr)[-2000:]
    return m.group(1)


def test_profile_runs_every_job_on_slurm_with_local_results(slurm: dict[str, str],
                                                             small_cohort: Path,
                                                             finished_run: Path,
                                                             tmp_path: Path):
    work = copy_cohort(small_cohort, tmp_path / "onslurm")
    t0 = time.monotonic()
    proc = run_on_slurm(work, slurm)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    jobs = sacct(slurm, run_id_of(proc))
    rules = sorted(j["comment"].split("_wildcards_")[0] for j in jobs)
    listed = subprocess.run([str(Path(slurm["PATH"].split(":")[0]) / "snakemake"),
                             "--list-rules"], cwd=ROOT, capture_output=True, text=True,
                            env=slurm, timeout=120).stdout
    listed = [ln.split()[0] for ln in listed.splitlines() if ln.strip() and not ln[0].isspace()]
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    n_omics, restarts = len(cfg["omics"]), cfg["integrate"]["restarts"]
    # ingest and normalize once per omic, stability once per shard (default 4), MOFA+ once
    # per restart, every other rule once; `all` runs locally
    per_rule = {"ingest": n_omics, "normalize": n_omics, "stability": 4,
                "mofa_restart": restarts, "all": 0,
                "by_group": int(cfg.get("groups") is not None)}   # only with MOFA+ groups
    # and the new-cohort rules once per cohort under apply: (per table for apply_ingest)
    scored = cfg.get("apply") or {}
    per_rule.update({r: len(scored) for r in ("apply_samples", "apply_score",
                                              "patient_report")})
    per_rule["apply_ingest"] = sum(len(a["omics"]) for a in scored.values())
    assert len(jobs) == sum(per_rule.get(r, 1) for r in listed), (jobs, listed)
    assert rules.count("rule_stability") == 4
    assert restarts == 2 and rules.count("rule_mofa_restart") == 2
    assert rules.count("rule_ingest") == 5 and rules.count("rule_integrate") == 1
    assert all(j["state"] == "COMPLETED" and j["exit"] == "0:0" for j in jobs), jobs
    for rel in COMPARED:
        assert (work / "results" / "small" / rel).read_bytes() == (
            finished_run / "results" / "small" / rel).read_bytes(), rel
    print(f"SLURM run: {len(jobs)} jobs, {wall:.0f} s wall")


def test_failing_rule_is_reported_and_retried(slurm: dict[str, str], small_cohort: Path,
                                              tmp_path: Path):
    work = copy_cohort(small_cohort, tmp_path / "failing")
    p = work / "data" / "methylation.csv"
    lines = p.read_text().splitlines()
    lines[3] = lines[3].replace(",", ",x", 1)  # a non-numeric cell
    p.write_text("\n".join(lines) + "\n")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["omics"] = {"methylation": cfg["omics"]["methylation"]}  # one job to fail, fast
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_on_slurm(work, slurm)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Error in rule ingest" in out and "SLURM status is: 'FAILED'" in out
    jobs = [j for j in sacct(slurm, run_id_of(proc)) if j["comment"].startswith("rule_ingest")]
    retries = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())["retries"]
    assert [j["state"] for j in jobs] == ["FAILED"] * (1 + retries), jobs
    log = (work / "logs" / "ingest" / "small" / "methylation.log").read_text()
    assert "non-numeric cell at row 4, column 2" in log
