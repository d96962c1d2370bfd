"""Planted-truth validation: how well a run recovers what the synthetic generator planted.

``python -m omix.validate RESULTS_DIR TRUTH_DIR`` prints one line per figure and writes
``RESULTS_DIR/validation.tsv``: factor recovery (best |r| of each planted factor with a fitted
factor), precision and recall of the planted outcome biomarkers among the top k of ranked.tsv
(k = their number), ARI of the clusters against the planted groups, and the nested-CV AUC.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .io import write_tsv

TARGETS = {"factor_abs_r_min": 0.9, "precision_at_k": 0.9, "ari_groups": 0.8}


def validate(results: str | os.PathLike[str], truth: str | os.PathLike[str]) -> pd.DataFrame:
    r, t = Path(results), Path(truth)
    tf = pd.read_csv(t / "factors.tsv", sep="\t", index_col=0)
    planted = json.loads((t / "planted.json").read_text())
    feats = pd.read_csv(t / "features.tsv", sep="\t")
    z = pd.read_csv(r / "mofa" / "factors.tsv", sep="\t", index_col=0).reindex(tf.index)
    true_f = [c for c in tf.columns if c.startswith("Factor")]
    corr = np.abs(np.corrcoef(tf[true_f].T.to_numpy(), z.T.to_numpy())[:len(true_f),
                                                                         len(true_f):])
    rows = [{"figure": f"factor_abs_r_{f}", "value": float(corr[i].max())}
            for i, f in enumerate(true_f)]
    rows.append({"figure": "factor_abs_r_min", "value": float(corr.max(axis=1).min())})
    out_factor = planted["outcome_factor"]
    truth_set = set(zip(feats.loc[feats["factor"] == out_factor, "omic"],
                        feats.loc[feats["factor"] == out_factor, "feature"], strict=True))
    ranked = pd.read_csv(r / "biomarkers" / "ranked.tsv", sep="\t", dtype={"feature": str})
    k = len(truth_set)
    top = set(zip(ranked["omic"].head(k), ranked["feature"].head(k), strict=True))
    hits = len(top & truth_set)
    rows += [{"figure": "precision_at_k", "value": hits / k},
             {"figure": "recall_at_k", "value": hits / k},
             {"figure": "k", "value": float(k)}]
    from sklearn.metrics import adjusted_rand_score

    cl = pd.read_csv(r / "clusters.tsv", sep="\t", index_col=0).reindex(tf.index)
    rows.append({"figure": "ari_groups", "value": float(adjusted_rand_score(tf["group"],
                                                                            cl["cluster"]))})
    metrics = r / "predict" / "metrics.tsv"
    if metrics.exists():
        m = pd.read_csv(metrics, sep="\t")
        sel = m[(m["model"] == "inner_cv_choice") & (m["metric"] == "auc")]
        if len(sel):
            rows.append({"figure": "prediction_auc", "value": float(sel["mean"].iloc[0])})
    table = pd.DataFrame(rows)
    table["target"] = table["figure"].map(TARGETS)
    table["met"] = [("" if np.isnan(tg) else "yes" if v >= tg else "NO")
                    for v, tg in zip(table["value"], table["target"].astype(float),
                                     strict=True)]
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("truth")
    a = ap.parse_args(argv)
    table = validate(a.results, a.truth)
    write_tsv(table, Path(a.results) / "validation.tsv", float_format="%.4f")
    for row in table.itertuples():
        target = "" if np.isnan(row.target) else f"  (target >= {row.target}: {row.met})"
        print(f"{row.figure:>22}: {row.value:.3f}{target}")


if __name__ == "__main__":
    main()
