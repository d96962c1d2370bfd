"""Determinism, recovery after kill -9, privacy of logs, pseudonymisation."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_cohort, run_snakemake, snakemake_cmd, snakemake_env

COMPARED = ("biomarkers/ranked.tsv", "clusters.tsv", "mofa/factors.tsv",
            "mofa/variance_explained.tsv", "clusters_vs_outcome.tsv",
            "associations/associations.tsv", "predict/predictions.tsv", "predict/metrics.tsv")


@pytest.mark.slow
def test_kill_9_during_integration_then_same_command_completes_identically(
        finished_run: Path, small_cohort: Path, tmp_path: Path):
    work = copy_cohort(small_cohort, tmp_path / "killed")
    proc = subprocess.Popen(snakemake_cmd(work), env=snakemake_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the MOFA+ fits are the restart jobs (the integrate job after them only picks the best
    # and writes the outputs, in well under a second): kill while they run
    logs = work / "logs" / "mofa_restart" / "small"
    deadline = time.monotonic() + 300
    while not (logs.is_dir() and any(logs.iterdir())) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before integration started"
    time.sleep(0.5)  # inside mofapy2
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
    proc.wait()
    assert not (work / "results" / "small" / "small.h5mu").exists()
    assert any((work / ".snakemake" / "locks").iterdir())  # the stale lock is there
    again = run_snakemake(work)
    assert again.returncode == 0, again.stderr[-3000:]
    for rel in COMPARED:
        assert (work / "results" / "small" / rel).read_bytes() == (
            finished_run / "results" / "small" / rel).read_bytes(), rel
    assert not list((work / "results").rglob(".*.part*"))


def test_logs_hold_no_sample_ids_and_no_data_values(finished_run: Path, small_cohort: Path):
    sheet = pd.read_csv(small_cohort / "data" / "samples.tsv", sep="\t")
    ids = list(sheet["sample_id"])
    raw = pd.read_csv(small_cohort / "data" / "methylation.csv", index_col=0)
    values = [f"{v:.6g}" for v in raw.to_numpy().ravel()[::97] if len(f"{v:.6g}") >= 7]
    rna = pd.read_csv(small_cohort / "data" / "rna_counts.csv", index_col=0)
    values += [str(v) for v in rna.to_numpy().ravel()[::131] if v >= 100_000]
    assert len(values) > 10
    logs = list((finished_run / "logs").rglob("*.log"))
    assert len(logs) >= 15
    text = "\n".join(p.read_text() for p in logs)
    assert [i for i in ids if i in text] == []
    assert [v for v in values if v in text] == []


@pytest.mark.slow
def test_pseudonymised_run_contains_no_real_id_anywhere(small_cohort: Path, tmp_path: Path):
    from omix.privacy import pseudonym

    work = copy_cohort(small_cohort, tmp_path / "pseudo")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["privacy"] = {"pseudonymize": True, "key_env": "OMIX_TEST_KEY",
                      "mapping_file": "private/pseudonyms.tsv"}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    key = "a-test-key-of-32-characters-long"
    proc = run_snakemake(work, "--until", "cluster", "select",
                         env=snakemake_env(OMIX_TEST_KEY=key))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = list(pd.read_csv(small_cohort / "data" / "samples.tsv", sep="\t")["sample_id"])
    mapping = pd.read_csv(work / "private" / "pseudonyms.tsv", sep="\t")
    assert list(mapping["sample_id"]) == ids
    assert list(mapping["pseudonym"]) == [pseudonym(i, key.encode()) for i in ids]
    clusters = pd.read_csv(work / "results" / "small" / "clusters.tsv", sep="\t")
    assert set(clusters["sample_id"]) == set(mapping["pseudonym"])
    scanned = 0
    for root in ("results", "logs", ".snakemake", "benchmarks"):
        for p in (work / root).rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                assert key.encode() not in data, p
                assert not [i for i in ids if i.encode() in data], p
                scanned += 1
    assert scanned > 20
