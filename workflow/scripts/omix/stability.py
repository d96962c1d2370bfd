"""Stability selection with a permutation-based FDR (Meinshausen & Buehlmann 2010).

For each resample r, a sparse model (elastic-net logistic regression for classes, elastic net
for numbers; the L2 part keeps correlated features of one biological axis together, where a pure
lasso picks one of them at random and no single one looks stable) is fitted on a random half of
the labelled samples, with median imputation and scaling fitted on
that half; a feature is selected when its coefficient is non-zero.  The selection probability
of a feature is the fraction of resamples selecting it.  The same is done with the outcome
permuted (permutation p uses the same subsamples), which gives the null distribution of
selection probabilities; a feature's q-value is the smallest estimated FDR of any threshold at or
below its probability: FDR(t) = mean_p #{null_p >= t} / #{observed >= t}.

Resample r of permutation p is seeded by (seed, p, r), so the counts do not depend on how the
resamples are split into Snakemake jobs (shards).  Written here, not taken from a library:
scikit-learn removed its RandomizedLogisticRegression and no maintained package combines
stability selection with a permutation FDR; the pieces (solvers, scaling) are scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .predict import is_classification


def _fit_selected(x: np.ndarray, y: np.ndarray, classification: bool, c: float,
                  l1_ratio: float) -> np.ndarray:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import ElasticNet, LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xs = StandardScaler().fit_transform(
        SimpleImputer(strategy="median", keep_empty_features=True).fit_transform(x))
    if classification:
        model = LogisticRegression(l1_ratio=l1_ratio, solver="saga", C=c, max_iter=2000,
                                   class_weight="balanced", random_state=0)
    else:
        model = ElasticNet(alpha=1.0 / c, l1_ratio=l1_ratio, max_iter=20000)
    model.fit(xs, y)
    return np.any(np.atleast_2d(model.coef_) != 0, axis=0)


def stability_counts(x: pd.DataFrame, y: pd.Series, resamples: Iterable[int],
                     permutations: int, c: float = 0.05, seed: int = 0,
                     l1_ratio: float = 0.5) -> pd.DataFrame:
    """Selection counts per feature for the observed outcome (perm 0) and each permutation."""
    samples = [s for s in x.index if pd.notna(y.get(s))]
    xx, yy = x.loc[samples].to_numpy(dtype=float), y.loc[samples]
    classification = is_classification(yy)
    yv = yy.astype(str).to_numpy() if classification else yy.to_numpy(dtype=float)
    n = len(samples)
    resamples = list(resamples)
    counts = np.zeros((permutations + 1, x.shape[1]), dtype=np.int64)
    for p in range(permutations + 1):
        y_p = yv if p == 0 else np.random.default_rng([seed, p]).permutation(yv)
        for r in resamples:
            idx = np.random.default_rng([seed, 0, r]).choice(n, size=n // 2, replace=False)
            if classification and len(set(y_p[idx])) < 2:
                continue
            counts[p] += _fit_selected(xx[idx], y_p[idx], classification, c, l1_ratio)
    return pd.DataFrame({"perm": np.repeat(np.arange(permutations + 1), x.shape[1]),
                         "feature": np.tile(np.asarray(x.columns, dtype=object),
                                            permutations + 1),
                         "count": counts.ravel()})


def stability_summary(counts: pd.DataFrame, resamples: int) -> pd.DataFrame:
    """Selection probability and permutation q-value per feature from (summed) shard counts."""
    total = counts.groupby(["perm", "feature"], sort=False)["count"].sum().reset_index()
    wide = total.pivot(index="feature", columns="perm", values="count") / resamples
    obs = wide[0].to_numpy()
    null = wide.drop(columns=0).to_numpy()
    thresholds = np.unique(obs[obs > 0])[::-1]  # descending
    fdr = {}
    for t in thresholds:
        v = (null >= t).sum(axis=0).mean() if null.size else 0.0
        fdr[t] = min(1.0, v / max((obs >= t).sum(), 1))
    # q(t) = min FDR over thresholds t' <= t (those sets all contain the feature)
    q_at, best = {}, 1.0
    for t in thresholds[::-1]:  # ascending
        best = min(best, fdr[t])
        q_at[t] = best
    q = np.array([q_at.get(p, 1.0) if p > 0 else 1.0 for p in obs])
    return pd.DataFrame({"feature": wide.index.astype(str), "selection_probability": obs,
                         "q_value": q})
