"""Stability selection with a permutation-based FDR (Meinshausen & Buehlmann 2010).

For each resample r, a sparse model (elastic-net logistic regression for classes, by default
solved by IRLS with coordinate descent, :func:`_selected_cd`; elastic net for numbers; the L2 part
keeps correlated features of one biological axis together, where a pure lasso picks one of
them at random and no single one looks stable) is fitted on a random half of the labelled
samples, with median imputation and scaling fitted on that half; a feature is selected when
its coefficient is non-zero.  The penalty is ``penalty`` times the noise level of the fit
(:func:`noise_level`: the largest score a pure-noise feature reaches, sigma sqrt(2 log p)),
so each fit lets in about as little noise at 5,000 patients as at 100.  The selection
probability of a feature is the fraction of resamples selecting it.  The same is done with
the outcome permuted (permutation p uses the same subsamples), which gives the null
distribution of selection probabilities; a feature's q-value is the smallest estimated FDR
of any threshold at or below its probability: FDR(t) = mean_p #{null_p >= t} / #{observed >= t}.

Resample r of permutation p is seeded by (seed, p, r), so the counts do not depend on how the
resamples are split into Snakemake jobs (shards).  Written here, not taken from a library:
scikit-learn removed its RandomizedLogisticRegression and no maintained package combines
stability selection with a permutation FDR; the pieces (solvers, scaling) are scikit-learn's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from .errors import eta
from .errors import progress as report
from .outcome import resolve

log = logging.getLogger("omix.stability")


SOLVERS = ("cd", "saga")


def _standardised(x: np.ndarray) -> np.ndarray:
    """Median imputation and scaling fitted on this half-sample, Fortran order for the
    coordinate-descent solver (which then needs no copy)."""
    from sklearn.preprocessing import StandardScaler

    from .impute import MedianImputer

    xs = StandardScaler().fit_transform(MedianImputer().fit_transform(x))
    return np.asfortranarray(xs, dtype=np.float64)


def noise_level(weighted_residual: np.ndarray, p: int) -> float:
    """The largest score a pure-noise feature is expected to reach, alpha's unit.

    At the null model the score of a standardised feature j independent of the outcome is
    |sum_i w_i e_i x_ij| / sum_i w_i (e_i the residual: y - 1/2 for the balanced logistic
    model, the centred outcome for the elastic net); its standard deviation is
    sigma = sqrt(sum_i (w_i e_i)^2) / sum_i w_i and the largest of p such scores is about
    sigma * sqrt(2 log p), the lasso's universal threshold (Donoho & Johnstone; Buehlmann &
    van de Geer ch. 6).  Takes w_i e_i per sample; the caller divides by the sum of weights.
    """
    return float(np.sqrt(np.sum(weighted_residual ** 2)) * np.sqrt(2.0 * np.log(max(p, 2))))


def logistic_c(pos: np.ndarray, p: int, penalty: float) -> float:
    """scikit-learn's C of the balanced elastic-net logistic model whose alpha at the null
    model is ``penalty`` times the noise level (:func:`noise_level`).

    With balanced weights cw (summing to n) and p = 1/2 at the null model, IRLS weights are
    cw / 4 and the working residual 4 (y - 1/2), so the score is
    |sum_i cw_i (y_i - 1/2) x_ij| / (n / 4) and scikit-learn's alpha there is 4 / (C n).
    A fixed C instead (``stability_c`` before 2026-12) lets the per-patient penalty fall as
    1/n while noise falls as 1/sqrt(n): measured on the 1,000-patient scale cohort (5 classes,
    half-samples of 500 x 5,000), C = 0.05 let a permuted outcome select 863 features per
    resample, more than the observed outcome (520), and at 5,000 patients each fit took
    seconds and selected hundreds.
    """
    n = len(pos)
    cw = np.where(pos, n / (2.0 * pos.sum()), n / (2.0 * (~pos).sum()))
    threshold = 4.0 * noise_level(cw * (pos - 0.5), p) / n
    return 4.0 / (n * penalty * threshold)


def _selected_cd(xs: np.ndarray, y: np.ndarray, classification: bool, penalty: float,
                 l1_ratio: float) -> np.ndarray:
    """Features with a non-zero coefficient, by coordinate descent.

    Classes: the elastic-net logistic model with balanced class weights (the objective
    ``saga`` solves), fitted by :func:`omix.glm.logistic_enet`, one model per class against the
    rest for three or more classes (``saga`` fits one multinomial model; a feature counts as
    selected when any class uses it, either way).  Measured on this machine with the former
    fixed C = 0.05: 100 resamples x 11 outcomes on the 120 x 922 synthetic cohort, 5.4 s
    against 105 s for saga, the same 40 features at q <= 0.05 (``python -m
    omix.stability_bench``; with penalty 2, 68 features, precision 1.0, recall 0.69 of the
    planted ones).  Numbers: the elastic net (nothing is selected for a constant outcome).
    Either way alpha is ``penalty`` times the noise level of this fit (:func:`logistic_c`,
    :func:`noise_level`).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet

    from .glm import logistic_enet

    n, p = xs.shape
    if not classification:
        yc = y - y.mean()
        alpha = penalty * noise_level(yc, p) / n
        if alpha <= 0:
            return np.zeros(p, dtype=bool)
        model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, max_iter=5000, tol=1e-4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(xs, yc, check_input=False)
        return model.coef_ != 0
    classes = np.unique(y)
    selected = np.zeros(p, dtype=bool)
    for k in (classes[-1:] if len(classes) == 2 else classes):
        # cd_tol 1e-3 would be 1.7x faster at 1,000 x 5,000 but no longer selects exactly
        # what the converged logistic model selects (features at the boundary differ)
        pos = y == k
        selected |= logistic_enet(xs, pos, logistic_c(pos, p, penalty), l1_ratio)[0] != 0
    return selected


def _selected_saga(xs: np.ndarray, y: np.ndarray, classification: bool, penalty: float,
                   l1_ratio: float) -> np.ndarray:
    """The exact elastic-net logistic model (saga; multinomial for 3+ classes, its C that of
    the rarest class's one-vs-rest fit); numbers: the elastic net as in :func:`_selected_cd`.
    10-100x slower than ``cd`` at 1,000 patients x 10,000 features."""
    from sklearn.linear_model import LogisticRegression

    if not classification:
        return _selected_cd(xs, y, False, penalty, l1_ratio)
    classes, sizes = np.unique(y, return_counts=True)
    c = logistic_c(y == classes[np.argmin(sizes)], xs.shape[1], penalty)
    model = LogisticRegression(l1_ratio=l1_ratio, solver="saga", C=c, max_iter=2000,
                               class_weight="balanced", random_state=0)
    model.fit(np.ascontiguousarray(xs), y)
    return np.any(np.atleast_2d(model.coef_) != 0, axis=0)


def stability_counts(x: pd.DataFrame, y: pd.Series, resamples: Iterable[int],
                     permutations: int, penalty: float = 2.0, seed: int = 0,
                     l1_ratio: float = 0.5, solver: str = "cd",
                     progress: str = "stability", kind: str = "auto") -> pd.DataFrame:
    """Selection counts per feature for the observed outcome (perm 0) and each permutation.

    Each resample's half-sample is imputed and scaled once and shared by the observed and
    every permuted outcome (they use the same half-samples); ``progress`` prefixes the log's
    progress lines.
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown stability solver {solver!r}")
    fit = _selected_cd if solver == "cd" else _selected_saga
    samples = [s for s in x.index if pd.notna(y.get(s))]
    xx, yy = x.loc[samples].to_numpy(dtype=float), y.loc[samples]
    classification = resolve(kind, yy) == "classes"
    yv = yy.astype(str).to_numpy() if classification else yy.to_numpy(dtype=float)
    n = len(samples)
    resamples = list(resamples)
    y_perm = [yv] + [np.random.default_rng([seed, p]).permutation(yv)
                     for p in range(1, permutations + 1)]
    counts = np.zeros((permutations + 1, x.shape[1]), dtype=np.int64)
    t0 = last = time.monotonic()
    for i, r in enumerate(resamples):
        idx = np.random.default_rng([seed, 0, r]).choice(n, size=n // 2, replace=False)
        xs = _standardised(xx[idx])
        for p, y_p in enumerate(y_perm):
            if classification and len(set(y_p[idx])) < 2:
                continue
            counts[p] += fit(xs, y_p[idx], classification, penalty, l1_ratio)
        now = time.monotonic()
        if now - last > 10 or i + 1 == len(resamples):
            last = now
            left = (now - t0) / (i + 1) * (len(resamples) - i - 1)
            report(log, "%s: resample %d/%d (each fitted to the outcome and %d permutations "
                   "of it), %s left", progress, i + 1, len(resamples), permutations, eta(left))
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


def block_auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``scores`` (blocks x m) against one boolean truth of length m.

    The Mann-Whitney form with average ranks for ties, which is what
    ``sklearn.metrics.roc_auc_score`` computes; written here because the permutation importance
    scores thousands of short blocks per fold and roc_auc_score's input checks cost about
    1 ms a call (600 blocks x 5 classes: 3 s per fold, against 20 ms vectorised).
    """
    from scipy.stats import rankdata

    pos = np.asarray(positive, dtype=bool)
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    ranks = rankdata(np.atleast_2d(scores), method="average", axis=1)
    u = ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def rf_permutation_importance(x: pd.DataFrame, y: pd.Series, *, trees: int = 200,
                              folds: int = 5, repeats: int = 2, candidates: int = 200,
                              permutations: int = 3, seed: int = 0, n_jobs: int = 1,
                              kind: str = "auto") -> pd.DataFrame:
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
    from sklearn.metrics import r2_score
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    from .impute import MedianImputer

    ok = y.notna()
    xv, yy = x.loc[ok].to_numpy(dtype=float), y.loc[ok]
    classification = resolve(kind, yy) == "classes"
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
            return block_auc(yt == est.classes_[1], p.reshape(blocks, m))
        if classification:
            # macro one-vs-rest AUC of the class probabilities: with a few held-out patients
            # a permuted feature rarely flips a predicted class, but it moves probabilities
            p = est.predict_proba(xt)
            present = [j for j, c in enumerate(est.classes_) if 0 < np.sum(yt == c) < m]
            return np.mean([block_auc(yt == est.classes_[j], p[:, j].reshape(blocks, m))
                            for j in present], axis=0)
        pred = est.predict(xt)
        return np.array([r2_score(yt, pred[b * m:(b + 1) * m]) for b in range(blocks)])

    def fold(i: int, tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(drop in score of each candidate, the candidates) of outer fold ``i``."""
        imp = MedianImputer().fit(xv[tr])
        # float32, as the trees compare in float32 anyway (scikit-learn would convert each call)
        xtr = imp.transform(xv[tr]).astype(np.float32)
        xte = imp.transform(xv[te]).astype(np.float32)
        est = (RandomForestClassifier(n_estimators=trees, class_weight="balanced",
                                      random_state=seed + i, n_jobs=1)
               if classification else
               RandomForestRegressor(n_estimators=trees, random_state=seed + i, n_jobs=1))
        est.fit(xtr, yv[tr])
        base = scores_of(est, xte, yv[te], 1)[0]
        rng = np.random.default_rng([seed, i])
        cand = np.argsort(-est.feature_importances_, kind="stable")[:candidates]
        drop = np.zeros(len(cand))
        # stack (candidate, permutation) copies in chunks of about 128 MB: a forest's predict
        # has a fixed cost per call (200 trees), so few large calls win (at 1,000 x 5,000: 600
        # rows per call 12.3 s per fold, 6,000 rows 2.2 s, 30,000 1.6 s)
        per_chunk = max(1, int(128e6 // (xte.nbytes * permutations)))
        m = len(te)
        for c0 in range(0, len(cand), per_chunk):
            chunk = cand[c0:c0 + per_chunk]
            big = np.tile(xte, (len(chunk) * permutations, 1))
            for a, j in enumerate(chunk):
                for r in range(permutations):
                    b = a * permutations + r
                    big[b * m:(b + 1) * m, j] = rng.permutation(xte[:, j])
            s = scores_of(est, big, yv[te], len(chunk) * permutations)
            drop[c0:c0 + len(chunk)] = base - s.reshape(len(chunk), permutations).mean(axis=1)
        return drop, cand

    # folds run ``n_jobs`` at a time in threads (tree building and prediction release the
    # GIL), one thread per forest: on small cohorts a forest's own thread pool costs more than
    # it saves (bundled cohort, 10 folds: 4.8 s with two threads per forest, 3.3 s with one)
    from joblib import Parallel, delayed

    n_folds = folds * repeats
    scores = np.zeros((n_folds, x.shape[1]))
    chosen = np.zeros(x.shape[1], dtype=int)
    t0 = time.monotonic()
    results = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(
        delayed(fold)(i, tr, te) for i, (tr, te) in enumerate(splitter.split(xv, yv)))
    for i, (drop, cand) in enumerate(results):
        scores[i, cand] = drop
        chosen[cand] += 1
        left = (time.monotonic() - t0) / (i + 1) * (n_folds - i - 1)
        report(log, "random-forest importance: fold %d/%d done, %s left", i + 1, n_folds,
               eta(left))
    scores[np.abs(scores) < 1e-12] = 0.0  # rounding residue of identical scores
    return pd.DataFrame({"feature": x.columns, "rf_importance": scores.mean(axis=0),
                         "rf_importance_sd": scores.std(axis=0, ddof=1),
                         "rf_candidate_folds": chosen})
