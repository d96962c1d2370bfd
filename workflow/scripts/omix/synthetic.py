"""A synthetic multi-omics cohort with planted factors, biomarkers, groups and outcome.

Five views exercise every ``kind``: RNA counts (CSV, features x samples), somatic mutations
(binary, gzipped TSV), proteomics (intensity, TSV, samples x features, some missing at random),
metabolomics (intensity, parquet, with per-sample dilution and values below a detection limit:
missing not at random) and methylation (beta, CSV).  The truth is written beside the data:
``truth/factors.tsv`` (planted factor values and group per sample), ``truth/features.tsv``
(every feature with a planted non-zero weight) and ``truth/planted.json``.

Command line: ``python -m omix.synthetic OUTDIR [--n-samples N] [--seed S] [--signal X]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .io import atomic_path


@dataclass(frozen=True)
class SyntheticSpec:
    n_samples: int = 120
    n_factors: int = 3
    n_groups: int = 3
    seed: int = 7
    signal: float = 1.0           # scales planted weights: 0 = no signal
    active_fraction: float = 0.1  # fraction of each view's features loading on each factor
    rna_features: int = 400
    mutation_features: int = 60
    protein_features: int = 120
    metabolite_features: int = 150
    methylation_features: int = 200
    missing_view_fraction: float = 0.1   # per non-RNA view: samples not measured
    outcome_factor: int = 0              # index of the factor driving the outcome
    outcome_strength: float = 3.0


VIEWS = {  # name: (kind, file, layout)
    "rna": ("counts", "rna_counts.csv", "features_x_samples"),
    "mutations": ("binary", "mutations.tsv.gz", "features_x_samples"),
    "protein": ("intensity", "proteomics.tsv", "samples_x_features"),
    "metabolites": ("intensity", "metabolomics.parquet", "features_x_samples"),
    "methylation": ("beta", "methylation.csv", "features_x_samples"),
}


def _weights(rng: np.random.Generator, d: int, k: int, frac: float, scale: float,
             ) -> np.ndarray:
    """Sparse planted weights: each factor loads on a disjoint block of ``frac * d`` features."""
    w = np.zeros((d, k))
    m = max(2, round(frac * d))
    perm = rng.permutation(d)
    for j in range(k):
        idx = perm[j * m:(j + 1) * m]
        w[idx, j] = rng.choice([-1.0, 1.0], size=len(idx)) * rng.uniform(0.8, 1.2, len(idx))
    return w * scale


def generate(spec: SyntheticSpec) -> dict[str, object]:
    """Return tables, sample sheet and truth as in-memory objects (see :func:`write`)."""
    rng = np.random.default_rng(spec.seed)
    n, k = spec.n_samples, spec.n_factors
    ids = [f"SYN-{i + 1:04d}" for i in range(n)]
    group = rng.permutation(np.arange(n) % spec.n_groups)
    centres = np.zeros((spec.n_groups, k))
    for g in range(spec.n_groups):  # groups separate on factors 1 and 2 (2.5 SD apart)
        angle = 2 * np.pi * g / spec.n_groups
        centres[g, 0], centres[g, 1] = 2.5 * np.cos(angle), 2.5 * np.sin(angle)
    z = centres[group] + rng.normal(0, 0.6, (n, k))
    z[:, 2:] = rng.normal(0, 1, (n, k - 2))  # further factors: continuous, no group structure
    z = (z - z.mean(0)) / z.std(0)

    tables: dict[str, pd.DataFrame] = {}
    truth_rows = []

    def record(view: str, feats: list[str], w: np.ndarray) -> None:
        for d, j in zip(*np.nonzero(w), strict=True):  # signal 0: nothing planted
            truth_rows.append({"omic": view, "feature": feats[d], "factor": f"Factor{j + 1}",
                               "weight": round(float(w[d, j]), 6)})

    s = spec.signal
    # RNA: negative-binomial counts around exp(base + W z)
    d = spec.rna_features
    feats = [f"GENE{i + 1:04d}" for i in range(d)]
    w = _weights(rng, d, k, spec.active_fraction, 0.7 * s)
    base = rng.normal(5.0, 1.5, d)
    lib = rng.uniform(0.7, 1.3, n)
    mu = np.exp(base[None, :] + z @ w.T) * lib[:, None]
    r = 10.0
    counts = rng.negative_binomial(r, r / (r + mu))
    tables["rna"] = pd.DataFrame(counts, index=ids, columns=feats)
    record("rna", feats, w)

    # mutations: Bernoulli, logit = base + W z
    d = spec.mutation_features
    feats = [f"MUT{i + 1:03d}" for i in range(d)]
    w = _weights(rng, d, k, spec.active_fraction * 2, 1.5 * s)
    base = rng.normal(-1.7, 0.4, d)
    p = 1 / (1 + np.exp(-(base[None, :] + z @ w.T)))
    tables["mutations"] = pd.DataFrame((rng.uniform(size=p.shape) < p).astype(int), index=ids,
                                       columns=feats)
    record("mutations", feats, w)

    # proteomics: log-normal intensities, a few values missing at random
    d = spec.protein_features
    feats = [f"PROT{i + 1:03d}" for i in range(d)]
    w = _weights(rng, d, k, spec.active_fraction, 0.6 * s)
    logx = rng.normal(20, 1.5, d)[None, :] + z @ w.T + rng.normal(0, 0.5, (n, d))
    prot = np.exp2(logx)
    prot[rng.uniform(size=prot.shape) < 0.03] = np.nan
    tables["protein"] = pd.DataFrame(prot, index=ids, columns=feats)
    record("protein", feats, w)

    # metabolomics: dilution per sample, values below a detection limit reported as 0 (MNAR)
    d = spec.metabolite_features
    feats = [f"MET{i + 1:03d}" for i in range(d)]
    w = _weights(rng, d, k, spec.active_fraction, 0.6 * s)
    logx = rng.normal(12, 2.0, d)[None, :] + z @ w.T + rng.normal(0, 0.4, (n, d))
    dilution = rng.uniform(-0.8, 0.8, n)
    met = np.exp2(logx + dilution[:, None])
    lod = np.exp2(np.quantile(logx, 0.06))
    met[met < lod] = 0.0
    tables["metabolites"] = pd.DataFrame(met, index=ids, columns=feats)
    record("metabolites", feats, w)

    # methylation: beta = inverse logit of M-values
    d = spec.methylation_features
    feats = [f"cg{i + 1:08d}" for i in range(d)]
    w = _weights(rng, d, k, spec.active_fraction, 0.8 * s)
    m = rng.normal(0, 2.0, d)[None, :] + z @ w.T + rng.normal(0, 0.4, (n, d))
    tables["methylation"] = pd.DataFrame(1 / (1 + np.exp2(-m)), index=ids, columns=feats)
    record("methylation", feats, w)

    # partial overlap: each non-RNA view misses a random subset of samples
    for view in ("mutations", "protein", "metabolites", "methylation"):
        miss = rng.uniform(size=n) < spec.missing_view_fraction
        tables[view] = tables[view].loc[~miss]

    # clinical: outcome driven by one factor; survival by the same factor; site without effect
    eta = spec.outcome_strength * s * z[:, spec.outcome_factor]
    response = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-eta)), "responder",
                        "non_responder")
    hazard = 0.002 * np.exp(0.8 * s * z[:, spec.outcome_factor])
    t_event = rng.exponential(1 / hazard)
    t_cens = rng.uniform(200, 2000, n)
    sheet = pd.DataFrame({
        "sample_id": ids,
        "response": response,
        "age": np.round(rng.normal(60, 10, n)).astype(int),
        "sex": rng.choice(["female", "male"], n),
        "site": rng.choice(["site_A", "site_B", "site_C"], n),
        "os_time": np.round(np.minimum(t_event, t_cens), 1),
        "os_event": (t_event <= t_cens).astype(int),
    })
    truth_factors = pd.DataFrame(np.round(z, 6), columns=[f"Factor{j + 1}" for j in range(k)])
    truth_factors.insert(0, "sample_id", ids)
    truth_factors["group"] = [f"G{g + 1}" for g in group]
    planted = {"spec": asdict(spec), "outcome_column": "response",
               "outcome_factor": f"Factor{spec.outcome_factor + 1}",
               "group_factors": ["Factor1", "Factor2"],
               "views": {v: {"kind": kd, "file": f, "layout": lay}
                         for v, (kd, f, lay) in VIEWS.items()}}
    return {"tables": tables, "sheet": sheet, "truth_factors": truth_factors,
            "truth_features": pd.DataFrame(truth_rows, columns=["omic", "feature", "factor",
                                                                 "weight"]),
            "planted": planted}


def write(spec: SyntheticSpec, outdir: str | os.PathLike[str]) -> Path:
    """Write the cohort to ``outdir``: the tables, ``samples.tsv`` and ``truth/``."""
    out = Path(outdir)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    g = generate(spec)
    tables: dict[str, pd.DataFrame] = g["tables"]  # type: ignore[assignment]
    for view, (_kind, fname, layout) in VIEWS.items():
        df = tables[view]
        df = df.T if layout == "features_x_samples" else df
        df = df.rename_axis("feature" if layout == "features_x_samples" else "sample")
        with atomic_path(out / fname) as tmp:
            if fname.endswith(".parquet"):
                df.reset_index().to_parquet(tmp, index=False)
            elif fname.endswith(".gz"):  # no name and no time in the header: reproducible
                text = df.to_csv(sep="\t", float_format="%.6g", lineterminator="\n")
                tmp.write_bytes(gzip.compress(text.encode(), mtime=0))
            elif ".tsv" in fname:
                df.to_csv(tmp, sep="\t", float_format="%.6g", lineterminator="\n")
            else:
                df.to_csv(tmp, float_format="%.6g", lineterminator="\n")
    sheet: pd.DataFrame = g["sheet"]  # type: ignore[assignment]
    sheet.to_csv(out / "samples.tsv", sep="\t", index=False, lineterminator="\n")
    g["truth_factors"].to_csv(out / "truth" / "factors.tsv", sep="\t",  # type: ignore[union-attr]
                              index=False, lineterminator="\n")
    g["truth_features"].to_csv(out / "truth" / "features.tsv", sep="\t",  # type: ignore[union-attr]
                               index=False, lineterminator="\n")
    (out / "truth" / "planted.json").write_text(json.dumps(g["planted"], indent=2) + "\n")
    return out


def write_scale_cohort(outdir: str | os.PathLike[str], n_samples: int = 1000, seed: int = 3,
                       missing: float = 0.10) -> Path:
    """A cohort of the size users bring: three omics with 10,000 features (RNA counts 6,000,
    proteomics 3,000 with ``missing`` of the cells missing at random, 1,000 binary mutations),
    10 % of the samples lacking each non-RNA omic, a 5-class ``subtype`` (the planted groups),
    a binary response and survival; plus ``config.yaml`` to run it from ``outdir``."""
    import yaml

    out = Path(outdir)
    spec = SyntheticSpec(n_samples=n_samples, n_factors=6, n_groups=5, seed=seed,
                         rna_features=6000, mutation_features=1000, protein_features=3000,
                         metabolite_features=20, methylation_features=20)
    write(spec, out / "data")
    truth = pd.read_csv(out / "data" / "truth" / "factors.tsv", sep="\t", index_col=0)
    sheet = pd.read_csv(out / "data" / "samples.tsv", sep="\t", dtype=str)
    sheet["subtype"] = sheet["sample_id"].map(truth["group"])
    sheet.to_csv(out / "data" / "samples.tsv", sep="\t", index=False, lineterminator="\n")
    prot = pd.read_csv(out / "data" / "proteomics.tsv", sep="\t", index_col=0)
    prot = prot.mask(np.random.default_rng([seed, 1]).random(prot.shape) < missing)
    prot.to_csv(out / "data" / "proteomics.tsv", sep="\t", float_format="%.6g",
                lineterminator="\n")
    cfg = {"cohort": f"scale_{n_samples}", "samples": "data/samples.tsv", "outcome": "subtype",
           "survival": {"time": "os_time", "event": "os_event", "time_unit": "days"},
           "omics": {"rna": {"path": "data/rna_counts.csv", "kind": "counts"},
                     "mutations": {"path": "data/mutations.tsv.gz", "kind": "binary"},
                     "protein": {"path": "data/proteomics.tsv", "kind": "intensity",
                                 "layout": "samples_x_features", "impute": "none"}}}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--n-samples", type=int, default=SyntheticSpec.n_samples)
    ap.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    ap.add_argument("--signal", type=float, default=SyntheticSpec.signal)
    ap.add_argument("--scale", action="store_true",
                    help="a 3-omic, 10,000-feature cohort with a 5-class subtype and its "
                         "config.yaml (run: snakemake --directory OUTDIR)")
    a = ap.parse_args(argv)
    if a.scale:
        path = write_scale_cohort(a.outdir, n_samples=a.n_samples)
        print(f"scale cohort written to {path}; run:\n  snakemake --snakefile "
              f"{Path(__file__).resolve().parents[3] / 'Snakefile'} --directory {path} "
              f"--configfile {path / 'config.yaml'} --cores all")
        return
    path = write(SyntheticSpec(n_samples=a.n_samples, seed=a.seed, signal=a.signal), a.outdir)
    print(f"synthetic cohort written to {path}")


if __name__ == "__main__":
    main()
