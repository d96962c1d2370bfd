"""Empirical coverage of the nested-CV interval (``make coverage``).

Each replicate draws a training cohort and a large test cohort from one generative model
(sparse logistic signal in many noisy features, the shape of a biomarker study), runs the
workflow's nested CV on the training cohort (the feature candidates and the inner-CV choice of
:mod:`omix.predict`, the same code), refits the finally chosen model on the whole training
cohort and scores it on the test cohort.  Coverage is the fraction of replicates whose nominal
95 % interval of the ``inner_cv_choice`` AUC contains that held-out AUC; the same is reported
for the naive interval (SD / sqrt(folds)) that ignores the overlap of training sets.

    python -m omix.coverage --replicates 50
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from . import predict as pr


def draw(rng: np.random.Generator, n: int, p: int, informative: int, signal: float
         ) -> tuple[pd.DataFrame, pd.Series]:
    beta = np.zeros(p)
    beta[:informative] = signal * np.where(np.arange(informative) % 2 == 0, 1.0, -1.0)
    x = rng.normal(size=(n, p))
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-(x @ beta)))
    cols = [f"f{j}" for j in range(p)]
    return pd.DataFrame(x, columns=cols), pd.Series(np.where(y, "R", "N"), name="y")


def replicate(seed: int, n_train: int, n_test: int, p: int, informative: int, signal: float,
              opts: pr.PredictOptions) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng([seed, 2026])
    x, y = draw(rng, n_train, p, informative, signal)
    xt, yt = draw(rng, n_test, p, informative, signal)
    per = pr.nested_cv_matrix(x, y, opts)
    s = pr.summarise(per, opts.folds, pr.smallest_class(y)).set_index(["model", "metric"])
    row = s.loc[(pr.CHOICE, "auc")]
    v = per.loc[per["model"] == pr.CHOICE, "auc"].to_numpy()
    naive = 1.96 * v.std(ddof=1) / np.sqrt(len(v))
    final = pr.choose_final(s.reset_index())
    est = pr.estimator("classification", final, opts, opts.inner_folds, 2, list(x.columns))
    est.fit(x.to_numpy(), y.to_numpy())
    classes = list(est.classes_)
    auc = roc_auc_score(yt == classes[1], est.predict_proba(xt.to_numpy())[:, 1])
    return {"seed": seed, "cv_auc": row["mean"], "ci_low": row["ci_low"],
            "ci_high": row["ci_high"], "naive_low": row["mean"] - naive,
            "naive_high": row["mean"] + naive, "final_model": final, "test_auc": auc}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=50)
    ap.add_argument("--n-train", type=int, default=120)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--features", type=int, default=500)
    ap.add_argument("--informative", type=int, default=10)
    ap.add_argument("--signal", type=float, default=0.6)
    ap.add_argument("--out", default=None, help="write the per-replicate table here (TSV)")
    a = ap.parse_args(argv)
    opts = replace(pr.PredictOptions(), models=("features", "l2_features"))
    rows, t0 = [], time.monotonic()
    for r in range(a.replicates):
        rows.append(replicate(r, a.n_train, a.n_test, a.features, a.informative, a.signal,
                              opts))
        left = (time.monotonic() - t0) / (r + 1) * (a.replicates - r - 1)
        print(f"replicate {r + 1}/{a.replicates}: CV AUC {rows[-1]['cv_auc']:.3f} "
              f"({rows[-1]['ci_low']:.3f}-{rows[-1]['ci_high']:.3f}), held-out "
              f"{rows[-1]['test_auc']:.3f}; ~{left:.0f} s left", flush=True)
    t = pd.DataFrame(rows)
    cov = float(((t["ci_low"] <= t["test_auc"]) & (t["test_auc"] <= t["ci_high"])).mean())
    naive = float(((t["naive_low"] <= t["test_auc"]) & (t["test_auc"] <= t["naive_high"])
                   ).mean())
    print(f"\n{a.replicates} replicates, n_train {a.n_train}, {a.features} features "
          f"({a.informative} informative, signal {a.signal:g}), {opts.folds}-fold x "
          f"{opts.repeats} nested CV")
    print(f"coverage of the held-out AUC by the corrected resampled-t 95% interval: {cov:.2f} "
          f"(mean width {(t['ci_high'] - t['ci_low']).mean():.3f})")
    below = float((t["test_auc"] < t["ci_low"]).mean())
    print(f"  held-out AUC below the interval (the model did worse than promised): {below:.2f}; "
          f"above it (better than promised): {float((t['test_auc'] > t['ci_high']).mean()):.2f}")
    print(f"coverage by the naive interval (SD/sqrt(folds)): {naive:.2f} "
          f"(mean width {(t['naive_high'] - t['naive_low']).mean():.3f})")
    print(f"mean CV AUC {t['cv_auc'].mean():.3f}, mean held-out AUC {t['test_auc'].mean():.3f}")
    if a.out:
        from .io import write_tsv

        write_tsv(t, a.out)
    return t


if __name__ == "__main__":
    main()
