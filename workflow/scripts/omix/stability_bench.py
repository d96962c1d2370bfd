"""Stability selection: the coordinate-descent solver against saga, on a planted-truth cohort.

``python -m omix.stability_bench H5MU SAMPLES OUTCOME TRUTH_DIR [--resamples R]
[--permutations P] [--solvers cd saga] [--penalty 1 1.5 2]`` runs stability selection on a
normalised MuData with each solver and penalty and prints, per run, the wall time, the mean
number of features selected per half-sample (observed outcome), the number of features with
q <= 0.05 and 0.10, and their precision and recall against the planted outcome features of
TRUTH_DIR (``features.tsv`` rows of ``planted.json``'s outcome factor, or of its group factors for a
class outcome that is the planted groups).  A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from . import io
from . import stability as st
from .predict import feature_table


def truth_features(truth: Path, outcome: str) -> set[str]:
    planted = json.loads((truth / "planted.json").read_text())
    feats = pd.read_csv(truth / "features.tsv", sep="\t")
    factors = ({planted["outcome_factor"]} if outcome == planted.get("outcome_column")
               else set(planted.get("group_factors", [])))
    sel = feats[feats["factor"].isin(factors)]
    return {f"{o}:{f}" for o, f in zip(sel["omic"], sel["feature"], strict=True)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("h5mu")
    ap.add_argument("samples")
    ap.add_argument("outcome")
    ap.add_argument("truth")
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument("--permutations", type=int, default=10)
    ap.add_argument("--penalty", type=float, nargs="+", default=[2.0],
                    help="select.stability_penalty values to compare")
    ap.add_argument("--solvers", nargs="+", default=list(st.SOLVERS))
    a = ap.parse_args(argv)
    mdata = io.read_h5mu(a.h5mu)
    x = feature_table(mdata, list(mdata.obs_names))
    y = io.read_sample_sheet(a.samples)[a.outcome]
    truth = truth_features(Path(a.truth), a.outcome) & set(x.columns)
    print(f"# {x.shape[0]} samples x {x.shape[1]} features, outcome {a.outcome} "
          f"({y.nunique()} levels), {len(truth)} planted features among them; "
          f"{a.resamples} resamples x {a.permutations + 1} outcomes")
    print("solver, penalty, seconds, mean_selected_per_fit, selected_q05, precision_q05, "
          "recall_q05, selected_q10, precision_q10, recall_q10")
    for solver, penalty in [(s, p) for s in a.solvers for p in a.penalty]:
        t0 = time.perf_counter()
        counts = st.stability_counts(x, y, range(a.resamples), a.permutations,
                                     penalty=penalty, solver=solver)
        secs = time.perf_counter() - t0
        per_fit = counts.loc[counts["perm"] == 0, "count"].sum() / a.resamples
        s = st.stability_summary(counts, a.resamples)
        figures = [f"{per_fit:.0f}"]
        for q in (0.05, 0.10):
            chosen = set(s.loc[s["q_value"] <= q, "feature"])
            hits = len(chosen & truth)
            figures += [str(len(chosen)), f"{hits / len(chosen) if chosen else float('nan'):.3f}",
                        f"{hits / len(truth) if truth else float('nan'):.3f}"]
        print(", ".join([solver, f"{penalty:g}", f"{secs:.1f}", *figures]), flush=True)


if __name__ == "__main__":
    main()
