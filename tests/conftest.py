"""Shared fixtures: a small synthetic cohort (generated once per session) and config helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-sample synthetic cohort with every kind of omic, and its config.yaml."""
    from omix.synthetic import SyntheticSpec, write

    out = tmp_path_factory.mktemp("cohort")
    write(SyntheticSpec(n_samples=60, seed=11, rna_features=120, mutation_features=30,
                        protein_features=40, metabolite_features=50,
                        methylation_features=60), out / "data")
    cfg = yaml.safe_load((ROOT / "config" / "synthetic.yaml").read_text())
    cfg["cohort"] = "small"
    cfg["samples"] = "data/samples.tsv"
    for omic in cfg["omics"].values():
        omic["path"] = "data/" + Path(omic["path"]).name
    cfg["integrate"] = {"factors": 6, "seed": 1, "restarts": 2}
    cfg["predict"] = {"rf_trees": 100}  # the test suite's time; 300 by default
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]


def snakemake_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}", **extra)


def run_snakemake(workdir: Path, *args: str, timeout: int = 600, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """Run the workflow with ``workdir`` as working directory and its own config.yaml."""
    return subprocess.run(snakemake_cmd(workdir, *args), capture_output=True, text=True,
                          timeout=timeout, env=env or snakemake_env())


@pytest.fixture(scope="session")
def finished_run(small_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One complete, uninterrupted run on the small cohort, shared by several test files."""
    work = copy_cohort(small_cohort, tmp_path_factory.mktemp("run1"))
    proc = run_snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / "terminal.txt").write_text(proc.stderr)  # what the user saw (tests read it)
    return work


def copy_cohort(src: Path, dst: Path) -> Path:
    shutil.copytree(src / "data", dst / "data")
    shutil.copy(src / "config.yaml", dst / "config.yaml")
    return dst


def split_cohort(src: Path, dst: Path, perturb: float = 1.0) -> Path:
    """Discovery = 40 of 60 samples, validation = the other 20 (every 3rd), same tables."""
    work = copy_cohort(src, dst)
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    sheet = pd.read_csv(work / cfg["samples"], sep="\t", dtype=str)
    val = sheet.iloc[2::3]
    sheet.drop(val.index).to_csv(work / "data" / "discovery.tsv", sep="\t", index=False)
    val.to_csv(work / "data" / "validation.tsv", sep="\t", index=False)
    cfg["samples"] = "data/discovery.tsv"
    cfg["sample_id"] = {"ignore_unlisted": True}
    omics = {}
    for o, t in cfg["omics"].items():
        path = t["path"]
        if perturb != 1.0 and o == "protein":  # a different validation table, same samples
            df = pd.read_csv(work / path, sep="\t", index_col=0)
            half = df.columns[: df.shape[1] // 2]  # a shift sample medians cannot undo
            df.loc[df.index.isin(val["sample_id"]), half] *= perturb
            path = "data/protein_validation.tsv"
            df.to_csv(work / path, sep="\t")
        omics[o] = {"path": path, "layout": t["layout"]}
    cfg["apply"] = {"val": {"model": "results/small/model", "samples": "data/validation.tsv",
                            "omics": omics}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return work


@pytest.fixture(scope="session")
def split_run(small_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Discovery on 40 patients, the other 20 scored as a validation cohort."""
    work = split_cohort(small_cohort, tmp_path_factory.mktemp("splitA"))
    proc = run_snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work
