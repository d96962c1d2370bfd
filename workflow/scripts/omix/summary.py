"""What the run found, in a few numbers: the end of ``make run`` and the report's first page.

:func:`headline` reads the finished run's cohort-level tables (never patient-level values): the
cohort size per omic, the factors and the variance they explain, the top biomarkers with their
q-values, the clusters and their survival test, the prediction with its honest interval next to
the plain baselines, the survival C-index.  A missing table (a step the config turned off) is
left out.  Two renderings: :func:`summary_lines` (terminal; ``python -m omix.summary
RESULTS_DIR``) and :mod:`omix.overview` (HTML, the report's landing page).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .io import pooled, read_tsv

TOP = 5

# the tables the headline reads, relative to a cohort's results directory
TABLES = {
    "overlap": "qc/sample_overlap.tsv",
    "variance": "mofa/variance_explained.tsv",
    "ranked": "biomarkers/ranked.tsv",
    "clusters": "clusters.tsv",
    "clusters_vs_outcome": "clusters_vs_outcome.tsv",
    "associations": "associations/associations.tsv",
    "metrics": "predict/metrics.tsv",
    "survival": "predict/survival_metrics.tsv",
    "resolution": "cluster/resolution_selection.tsv",
}
BASELINES = ("l2_features", "random_forest")


@dataclass
class Estimate:
    """A cross-validated figure with its 95% interval."""

    metric: str
    mean: float
    ci_low: float
    ci_high: float


@dataclass
class Headline:
    n_samples: int | None = None
    n_all_omics: int | None = None
    per_omic: dict[str, int] = field(default_factory=dict)      # samples measured per omic
    features: dict[str, int] = field(default_factory=dict)      # features in the model
    n_factors: int | None = None
    variance: dict[str, float] = field(default_factory=dict)    # total R2 (%) per view
    top: pd.DataFrame | None = None                             # top rows of ranked.tsv
    n_stable: int | None = None                                 # stability q <= 0.05
    cluster_sizes: dict[str, int] = field(default_factory=dict)
    survival_p: float | None = None                             # log-rank, clusters
    cluster_agreement: dict[str, float] = field(default_factory=dict)  # ARI/NMI vs outcome
    prediction: Estimate | None = None                          # inner-CV choice, honest
    final_model: str | None = None                              # refitted on all patients
    baselines: dict[str, Estimate] = field(default_factory=dict)
    prevalence: Estimate | None = None
    c_index: Estimate | None = None


def table_paths(results: str | os.PathLike[str]) -> dict[str, Path]:
    """The headline's tables of a results directory (absent ones left out)."""
    r = Path(results)
    return {k: r / v for k, v in TABLES.items() if (r / v).is_file()}


def _estimate(row: pd.Series, metric: str) -> Estimate:
    return Estimate(metric, float(row["mean"]), float(row["ci_low"]), float(row["ci_high"]))


def headline(paths: Mapping[str, str | os.PathLike[str]], top: int = TOP) -> Headline:
    """The headline figures from the tables in ``paths`` (keys of :data:`TABLES`)."""
    t = {k: read_tsv(p) for k, p in paths.items() if k in TABLES}
    h = Headline()
    if "overlap" in t:
        ov = t["overlap"]
        any_ = ov["omics"].str.endswith(" (any)")
        combos, per_omic = ov[~any_], ov[any_]
        h.n_samples = int(combos["n_samples"].sum())
        h.n_all_omics = int(combos.loc[combos["n_omics"] == len(per_omic), "n_samples"].sum())
        h.per_omic = {o.removesuffix(" (any)"): int(n)
                      for o, n in zip(per_omic["omics"], per_omic["n_samples"], strict=True)}
    if "variance" in t:
        r2 = t["variance"]
        h.n_factors = int(r2.loc[r2["factor"] != "total", "factor"].nunique())
        tot = r2[r2["factor"] == "total"]
        h.variance = {str(v): float(p) for v, p in zip(tot["view"], tot["r2_percent"],
                                                        strict=True)}
    if "ranked" in t and len(t["ranked"]):
        ranked = t["ranked"]
        h.features = {str(o): int(n) for o, n in ranked["omic"].value_counts(sort=False).items()}
        h.top = ranked.head(top).reset_index(drop=True)
        if "q_value" in ranked and ranked["selection_probability"].gt(0).any():
            h.n_stable = int((ranked["q_value"] <= 0.05).sum())
    if "clusters" in t:
        sizes = t["clusters"]["cluster"].astype(str).value_counts().sort_index()
        h.cluster_sizes = {str(c): int(n) for c, n in sizes.items()}
    if "associations" in t:
        a = t["associations"]
        lr = a[(a["variable"] == "cluster") & (a["clinical"] == "survival")]
        if len(lr):
            h.survival_p = float(lr["p"].iloc[0])
    if "clusters_vs_outcome" in t:
        cv = t["clusters_vs_outcome"]
        h.cluster_agreement = {str(m): float(v) for m, v in zip(cv["metric"], cv["value"],
                                                                 strict=True)}
    if "metrics" in t:
        m = pooled(t["metrics"])
        metric = "auc" if (m["metric"] == "auc").any() else "r2"
        m = m[m["metric"] == metric].set_index("model")
        if "inner_cv_choice" in m.index:
            h.prediction = _estimate(m.loc["inner_cv_choice"], metric)
        h.baselines = {b: _estimate(m.loc[b], metric) for b in BASELINES if b in m.index}
        if "baseline" in m.index:
            h.prevalence = _estimate(m.loc["baseline"], metric)
        chosen = m.index[m["selected"].astype(str) == "True"]
        h.final_model = str(chosen[0]) if len(chosen) else None
    if "survival" in t:
        s = pooled(t["survival"])
        s = s[s["model"] == "factors"]
        if len(s):
            h.c_index = _estimate(s.iloc[0], "c_index")
    return h


def summary_lines(results: str | os.PathLike[str]) -> list[str]:
    r = Path(results)
    h = headline(table_paths(r))
    out = [f"Results of cohort '{r.name}' in {r}/"]
    if h.n_samples is not None:
        out.append(f"  samples: {h.n_samples}, {h.n_all_omics} measured in all "
                   f"{len(h.per_omic)} omics ("
                   + ", ".join(f"{o} {n}" for o, n in h.per_omic.items()) + ")")
    if h.n_factors is not None:
        out.append(f"  MOFA+: {h.n_factors} factors; variance explained "
                   + ", ".join(f"{v} {p:.0f}%" for v, p in h.variance.items()))
    if h.top is not None:
        out.append("  top biomarkers: " + ", ".join(
            f"{f} ({o})" for f, o in zip(h.top["feature"], h.top["omic"], strict=True)))
    if h.n_stable is not None:
        out.append(f"  stability selection: {h.n_stable} features with q <= 0.05")
    if h.cluster_sizes:
        line = (f"  clusters: {len(h.cluster_sizes)} ("
                + ", ".join(f"{c}: {n}" for c, n in h.cluster_sizes.items()) + ")")
        if h.survival_p is not None:
            line += f"; survival log-rank p = {h.survival_p:.2g}"
        out.append(line)
    if h.prediction is not None:
        p = h.prediction
        refs = [f"{b} {e.mean:.3f}" for b, e in h.baselines.items()]
        out.append(f"  prediction: {p.metric.upper()} {p.mean:.3f} (95% CI "
                   f"{p.ci_low:.3f}-{p.ci_high:.3f}, nested CV, model choice "
                   "included)" + (f"; plain baselines {', '.join(refs)}" if refs else ""))
    if h.c_index is not None:
        c = h.c_index
        out.append(f"  survival: C-index {c.mean:.3f} (95% CI {c.ci_low:.3f}-{c.ci_high:.3f})")
    report = r / "report.html"
    out.append(f"  report: {report}" if report.is_file() else
               f"  report: not built (snakemake --report {report})")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    a = ap.parse_args(argv)
    print("\n".join(summary_lines(a.results)))


if __name__ == "__main__":
    main()
