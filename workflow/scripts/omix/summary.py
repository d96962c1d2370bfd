"""The few lines ``make run`` prints at the end: what the run found and where to look.

``python -m omix.summary RESULTS_DIR`` reads the finished run's tables (never patient-level
values) and prints the cohort size, the factors, the top biomarkers, the clusters and their
survival test, the prediction with its honest interval next to the plain baselines, and the
report's path.  A missing table (a step the config turned off) is simply left out.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from .io import read_tsv

TOP = 5


def _tsv(path: Path) -> pd.DataFrame | None:
    return read_tsv(path) if path.is_file() else None


def summary_lines(results: str | os.PathLike[str]) -> list[str]:
    r = Path(results)
    out = [f"Results of cohort '{r.name}' in {r}/"]
    overlap = _tsv(r / "qc" / "sample_overlap.tsv")
    if overlap is not None:
        any_ = overlap["omics"].str.endswith(" (any)")
        combos, per_omic = overlap[~any_], overlap[any_]
        n_all = int(combos.loc[combos["n_omics"] == len(per_omic), "n_samples"].sum())
        out.append(f"  samples: {int(combos['n_samples'].sum())}, {n_all} measured in all "
                   f"{len(per_omic)} omics (" + ", ".join(
                       f"{o.removesuffix(' (any)')} {n}" for o, n in
                       zip(per_omic["omics"], per_omic["n_samples"], strict=True)) + ")")
    r2 = _tsv(r / "mofa" / "variance_explained.tsv")
    if r2 is not None:
        tot = r2[r2["factor"] == "total"]
        k = r2.loc[r2["factor"] != "total", "factor"].nunique()
        out.append(f"  MOFA+: {k} factors; variance explained "
                   + ", ".join(f"{v} {p:.0f}%" for v, p in zip(tot["view"], tot["r2_percent"],
                                                               strict=True)))
    ranked = _tsv(r / "biomarkers" / "ranked.tsv")
    if ranked is not None and len(ranked):
        top = ranked.head(TOP)
        out.append("  top biomarkers: " + ", ".join(
            f"{f} ({o})" for f, o in zip(top["feature"], top["omic"], strict=True)))
        if "q_value" in ranked and ranked["selection_probability"].gt(0).any():
            out.append(f"  stability selection: {int((ranked['q_value'] <= 0.05).sum())} "
                       "features with q <= 0.05")
    clusters = _tsv(r / "clusters.tsv")
    if clusters is not None:
        sizes = clusters["cluster"].value_counts().sort_index()
        line = (f"  clusters: {len(sizes)} ("
                + ", ".join(f"{c}: {n}" for c, n in sizes.items()) + ")")
        assoc = _tsv(r / "associations" / "associations.tsv")
        if assoc is not None:
            lr = assoc[(assoc["variable"] == "cluster") & (assoc["clinical"] == "survival")]
            if len(lr):
                line += f"; survival log-rank p = {float(lr['p'].iloc[0]):.2g}"
        out.append(line)
    metrics = _tsv(r / "predict" / "metrics.tsv")
    if metrics is not None:
        metric = "auc" if (metrics["metric"] == "auc").any() else "r2"
        m = metrics[metrics["metric"] == metric].set_index("model")
        if "inner_cv_choice" in m.index:
            p = m.loc["inner_cv_choice"]
            refs = [f"{name} {m.loc[name, 'mean']:.3f}" for name in ("l2_features",
                                                                     "random_forest")
                    if name in m.index]
            out.append(f"  prediction: {metric.upper()} {p['mean']:.3f} (95% CI "
                       f"{p['ci_low']:.3f}-{p['ci_high']:.3f}, nested CV, model choice "
                       "included)" + (f"; plain baselines {', '.join(refs)}" if refs else ""))
    surv = _tsv(r / "predict" / "survival_metrics.tsv")
    if surv is not None:
        s = surv[surv["model"] == "factors"]
        if len(s):
            s0 = s.iloc[0]
            out.append(f"  survival: C-index {s0['mean']:.3f} (95% CI {s0['ci_low']:.3f}-"
                       f"{s0['ci_high']:.3f})")
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
