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
from typing import Any

import numpy as np
import pandas as pd

from .outcome import is_classification


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


def rf_permutation_importance(x: pd.DataFrame, y: pd.Series, *, trees: int = 200,
                              folds: int = 5, repeats: int = 2, candidates: int = 200,
                              permutations: int = 3, seed: int = 0, n_jobs: int = 1
                              ) -> pd.DataFrame:
    """Random-forest permutation importance, each fold judged on samples it did not train on.

    Repeated stratified k-fold: a forest (scikit-learn; median imputation fitted on the
    training part) is grown on the training part; the ``candidates`` features with the highest
    impurity importance *on that training part* are then permuted, ``permutations`` times each,
    in the held-out part, and the drop in score is recorded (AUC for two classes, balanced
    accuracy for more, R^2 for numbers).  Other features score 0 in that fold: permuting every
    column of a wide table in every fold costs far more than it adds.  The permutation loop is
    written here because ``sklearn.inspection.permutation_importance`` permutes every column it
    is given, and the forest must see all of them.  Returns, per feature, the mean drop over
    folds (``rf_importance``), its SD, and in how many folds it was a candidate.
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    ok = y.notna()
    xv, yy = x.loc[ok].to_numpy(dtype=float), y.loc[ok]
    classification = is_classification(yy)
    if classification:
        yv = yy.astype(str).to_numpy()
        binary = len(set(yv)) == 2
        splitter: Any = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats,
                                                random_state=seed)
    else:
        yv = yy.astype(float).to_numpy()
        splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)

    def scores_of(est: Any, xt: np.ndarray, yt: np.ndarray, blocks: int) -> np.ndarray:
        """Score of each of ``blocks`` stacked copies of the held-out part (one predict call:
        a forest's per-call overhead dominates on a few held-out samples)."""
        m = len(yt)
        if classification and binary:
            p = est.predict_proba(xt)[:, 1]
            return np.array([roc_auc_score(yt == est.classes_[1], p[b * m:(b + 1) * m])
                             for b in range(blocks)])
        if classification:
            # macro one-vs-rest AUC of the class probabilities: with a few held-out patients
            # a permuted feature rarely flips a predicted class, but it moves probabilities
            p = est.predict_proba(xt)
            present = [j for j, c in enumerate(est.classes_) if 0 < np.sum(yt == c) < m]
            return np.array([np.mean([roc_auc_score(yt == est.classes_[j],
                                                    p[b * m:(b + 1) * m, j]) for j in present])
                             for b in range(blocks)])
        pred = est.predict(xt)
        return np.array([r2_score(yt, pred[b * m:(b + 1) * m]) for b in range(blocks)])

    scores = np.zeros((folds * repeats, x.shape[1]))
    chosen = np.zeros(x.shape[1], dtype=int)
    for i, (tr, te) in enumerate(splitter.split(xv, yv)):
        imp = SimpleImputer(strategy="median", keep_empty_features=True).fit(xv[tr])
        xtr, xte = imp.transform(xv[tr]), imp.transform(xv[te])
        est = (RandomForestClassifier(n_estimators=trees, class_weight="balanced",
                                      random_state=seed + i, n_jobs=n_jobs)
               if classification else
               RandomForestRegressor(n_estimators=trees, random_state=seed + i, n_jobs=n_jobs))
        est.fit(xtr, yv[tr])
        base = scores_of(est, xte, yv[te], 1)[0]
        rng = np.random.default_rng([seed, i])
        cand = np.argsort(-est.feature_importances_, kind="stable")[:candidates]
        # stack (candidate, permutation) copies in chunks of about 25 MB
        per_chunk = max(1, int(25e6 // (xte.nbytes * permutations)))
        for c0 in range(0, len(cand), per_chunk):
            chunk = cand[c0:c0 + per_chunk]
            big = np.tile(xte, (len(chunk) * permutations, 1))
            m = len(te)
            for a, j in enumerate(chunk):
                for r in range(permutations):
                    b = a * permutations + r
                    big[b * m:(b + 1) * m, j] = rng.permutation(xte[:, j])
            s = scores_of(est, big, yv[te], len(chunk) * permutations)
            scores[i, chunk] = base - s.reshape(len(chunk), permutations).mean(axis=1)
        chosen[cand] += 1
    scores[np.abs(scores) < 1e-12] = 0.0  # rounding residue of identical scores
    return pd.DataFrame({"feature": x.columns, "rf_importance": scores.mean(axis=0),
                         "rf_importance_sd": scores.std(axis=0, ddof=1),
                         "rf_candidate_folds": chosen})
