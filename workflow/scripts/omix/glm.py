"""Penalised logistic regression solved as glmnet does, for stability selection and prediction.

A module of its own (imported only where scikit-learn is) because saved models refer to
``omix.glm.L1Logistic`` and ``omix.glm.L1LogisticCV``.

:func:`logistic_enet` is the elastic-net logistic model with balanced class weights and an
unpenalised intercept, solved by iteratively reweighted least squares, each step a weighted
elastic net solved by scikit-learn's coordinate descent on a working set of features.
:class:`L1LogisticCV` tunes the lasso case's C by an inner k-fold along a warm-started path
of C values, the way glmnet's ``cv.glmnet`` and scikit-learn's ``LogisticRegressionCV`` do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


def logistic_enet(xs: np.ndarray, pos: np.ndarray, c: float, l1_ratio: float,
                  max_steps: int = 30, tol: float = 1e-3, cd_tol: float = 1e-4,
                  grow: int = 100, init: tuple[np.ndarray, float] | None = None
                  ) -> tuple[np.ndarray, float]:
    """Elastic-net logistic regression with balanced class weights, the objective of
    scikit-learn's ``LogisticRegression(C=c, l1_ratio=l1_ratio, class_weight="balanced")``
    with an unpenalised intercept, solved as glmnet does: iteratively reweighted least
    squares, each step a weighted elastic net solved by coordinate descent (scikit-learn's
    ``ElasticNet``, warm-started, duality-gap tolerance ``cd_tol``).  Stops when no linear
    predictor moves by more than ``tol``.  Starts from ``init`` (coefficients, intercept: a
    warm start, e.g. the solution at a smaller C), else from zero.  Returns (coefficients,
    intercept).

    Each weighted elastic net is solved on a working set (as celer and skglm do): the features
    of the current model plus the ``grow`` (at least as many as the model has) largest
    violators of the optimality (KKT) condition |x_j' W r| / sum(W) <= alpha * l1_ratio;
    after each fit the condition is checked on every feature and violators are added until
    there are none, so the solution is that of the full problem (to ``cd_tol``), at a fraction
    of the cost: coordinate descent needs hundreds of passes on these correlated features and
    each pass now visits a few hundred of them, not all.  Measured at 500 x 5,000 (a
    half-sample of the 1,000-patient scale cohort, 5 classes, observed and permuted outcomes,
    135 fits): 36 s -> 4.7 s, the same 8,222 selections but 2 at the tolerance boundary.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet

    n, p = xs.shape
    cw = np.where(pos, n / (2.0 * pos.sum()), n / (2.0 * (~pos).sum()))
    yv = pos.astype(float)
    eta = np.zeros(n)  # balanced weights: the weighted null model has p = 1/2
    beta, b0 = np.zeros(p), 0.0
    lin = np.zeros(n)
    if init is not None:
        beta, b0 = init[0].copy(), float(init[1])
        lin = xs[:, beta != 0] @ beta[beta != 0]
        eta = lin + b0
    model = ElasticNet(l1_ratio=l1_ratio, max_iter=5000, tol=cd_tol, warm_start=True)

    def objective(eta: np.ndarray, beta: np.ndarray) -> float:
        loss = float(np.sum(cw * (np.logaddexp(0.0, eta) - yv * eta)))
        return c * loss + l1_ratio * float(np.abs(beta).sum()) + (1 - l1_ratio) / 2 * float(
            beta @ beta)

    f_old = objective(eta, beta)
    for _ in range(max_steps):
        beta_old, b0_old, lin_old = beta, b0, lin
        with np.errstate(over="ignore"):   # exp(-eta) = inf: prob 0, clipped
            prob = np.clip(1.0 / (1.0 + np.exp(-eta)), 1e-6, 1 - 1e-6)
        w = cw * prob * (1 - prob)
        z = eta + (yv - prob) / (prob * (1 - prob))
        # ElasticNet rescales sample weights to sum to n: the penalty follows that scale
        model.alpha = n / w.sum() / (c * n)
        lam = model.alpha * l1_ratio
        work = beta != 0
        res = z - lin
        res -= np.average(res, weights=w)  # the best intercept for the current coefficients
        fitted = False  # every step refits its working set at least once (new z and w)
        while True:
            grad = np.abs(xs.T @ (w * res)) / w.sum()
            viol = np.flatnonzero((grad > lam) & ~work)
            if len(viol) == 0 and (fitted or not work.any()):
                if not work.any():  # no feature enters: the intercept-only model
                    b0, lin = float(np.average(z, weights=w)), np.zeros(n)
                break
            work[viol[np.argsort(-grad[viol], kind="stable")[:max(grow, int(work.sum()))]]] = True
            fitted = True
            idx = np.flatnonzero(work)
            model.coef_ = beta[idx].copy()
            # coordinate descent on the working set's Gram matrix while it has fewer features
            # than rows: the same updates, each pass p^2 instead of n p (one class's path at
            # 2,667 x 5,000: 2.9 -> 1.7 s, objectives equal to 1e-15)
            model.precompute = len(idx) < n
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(np.asfortranarray(xs[:, idx]), z, sample_weight=w, check_input=False)
            beta = np.zeros(p)
            beta[idx] = model.coef_
            b0 = float(model.intercept_)
            lin = xs[:, idx] @ model.coef_
            res = z - lin - b0
        # a Newton step can overshoot where the classes (nearly) separate: halve it until the
        # penalised objective does not rise (by more than the solver resolves, 1e-6), as
        # liblinear's newGLMNET does with its line search.  Without it, one inner fold of the
        # 1,000-patient scale cohort diverged at C = 1 (objective 27 -> 73,000 in three steps).
        f = objective(lin + b0, beta)
        t = 1.0
        while not f <= f_old + 1e-6 * abs(f_old) and t > 1e-6:
            t /= 2.0
            beta = beta_old + (beta - beta_old) / 2.0
            b0 = b0_old + (b0 - b0_old) / 2.0
            lin = lin_old + (lin - lin_old) / 2.0
            f = objective(lin + b0, beta)
        f_old = f
        new = lin + b0
        moved = float(np.max(np.abs(new - eta)))
        eta = new
        if moved < tol:
            break
    return beta, b0


def entry_c(xs: np.ndarray, pos: np.ndarray) -> float:
    """The C below which the balanced L1 logistic model of :func:`logistic_enet` has no
    feature: at the null model (p = 1/2, IRLS weights cw / 4) feature j enters when
    C > 1 / |sum_i cw_i (y_i - 1/2) x_ij|."""
    n = len(pos)
    cw = np.where(pos, n / (2.0 * pos.sum()), n / (2.0 * (~pos).sum()))
    score = float(np.max(np.abs(xs.T @ (cw * (pos - 0.5))), initial=0.0))
    return 1.0 / score if score > 0 else np.inf


# the largest ratio between consecutive Cs of a path: half a decade.  A path of the grid's
# decades alone (0.01, 0.1, 1, 10) took 21.3 s on one class of an inner fold of the
# 5,000-patient scale cohort (2,667 x 5,000; from C = 0.1 to 1 the working set grew to 1,700
# features and one solve took 15 s), with half-decade steps 6.7 s, quarter-decade 6.6 s.
PATH_STEP = 10.0 ** 0.5


def path_points(c_in: float, cs: Sequence[float]) -> list[tuple[float, bool]]:
    """The Cs a path solves, each with whether it is one of ``cs`` (ascending): from the
    entry point ``c_in`` up by :data:`PATH_STEP` to the first C, then between consecutive Cs
    in equal ratios of at most :data:`PATH_STEP`.  The points between two Cs depend on those
    two only, so a path to any C of ``cs`` passes the same points as a path to the last."""
    out = [(c_in * PATH_STEP ** k, False) for k in range(1, 400)
           if c_in * PATH_STEP ** k < cs[0]]
    for prev, c in zip([None, *cs[:-1]], cs, strict=True):
        if prev is not None:
            k = int(np.ceil(np.log(c / prev) / np.log(PATH_STEP) - 1e-9))
            out += [(prev * (c / prev) ** (j / k), False) for j in range(1, k)]
        out.append((float(c), True))
    return out


def l1_path(xs: np.ndarray, pos: np.ndarray, cs: Sequence[float], cd_tol: float = 1e-3
            ) -> list[tuple[np.ndarray, float]]:
    """The balanced L1 logistic model at each C of ``cs`` (ascending), each solve
    warm-started from the previous one, through the points of :func:`path_points` from where
    the first feature enters (:func:`entry_c`), so no solve starts far from its solution
    (from zero, a solve at C = 10 on 533 x 5,000 took 6.5 s; from the solution at C = 1,
    0.04 s).

    ``cd_tol``: the coordinate descent's tolerance, 1e-3 for prediction (stability selection
    keeps 1e-4, where a feature at the selection boundary counts): on one class of an inner
    fold of the 5,000-patient scale cohort the path took 2.9 s instead of 7.4 s (1.7 s since
    the working set's coordinate descent runs on its Gram matrix), its objective within 2e-5
    of the tighter one's at every C (liblinear's was 15-17 % off)."""
    sol: tuple[np.ndarray, float] | None = None
    out = []
    for c, wanted in path_points(entry_c(xs, pos), cs):
        sol = logistic_enet(xs, pos, c, 1.0, cd_tol=cd_tol, init=sol)
        if wanted:
            out.append(sol)
    return out


def _paths(x: np.ndarray, y: np.ndarray, cs: list[float], last_only: bool = False
           ) -> tuple[np.ndarray, list[Any]]:
    """(classes, one :func:`l1_path` per binary problem: the last class against the others
    for two classes, each class against the rest for more; with ``last_only`` each path's
    solution at the last C instead)."""
    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("L1Logistic needs at least two classes")
    xs = np.asfortranarray(x, dtype=np.float64)
    paths = [l1_path(xs, y == k, cs) for k in (classes[1:] if len(classes) == 2 else classes)]
    return classes, [p[-1] for p in paths] if last_only else paths


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


class L1Logistic(ClassifierMixin, BaseEstimator):
    """Lasso logistic regression with balanced class weights and an unpenalised intercept
    (scikit-learn's ``LogisticRegression(C, l1_ratio=1, class_weight="balanced")`` objective);
    three or more classes one-vs-rest, probabilities normalised over the classes as
    scikit-learn's ``OneVsRestClassifier`` does.  Solved by :func:`l1_path` through ``path``
    (the smaller Cs of the grid it was tuned on) up to ``C``.

    Written here instead of liblinear, which served before 2026-12: liblinear penalises the
    intercept and stops early (tol 1e-4 of its starting gradient); on one inner fold of the
    1,000-patient scale cohort (533 x 5,000) its solutions at C = 10 had 281-301 non-zero
    coefficients and 15-17 % more objective than the optimum found here (107-127), held-out
    AUC 0.979-0.981 against 0.991-0.992."""

    def __init__(self, C: float = 1.0, path: tuple[float, ...] = ()) -> None:
        self.C, self.path = C, path

    def _set(self, classes: np.ndarray, sols: list[tuple[np.ndarray, float]]) -> L1Logistic:
        self.classes_ = classes
        self.coef_ = np.vstack([b for b, _ in sols])
        self.intercept_ = np.array([b0 for _, b0 in sols])
        self.n_features_in_ = self.coef_.shape[1]
        return self

    def fit(self, x: np.ndarray, y: np.ndarray) -> L1Logistic:
        cs = sorted({float(c) for c in self.path if c < self.C} | {float(self.C)})
        return self._set(*_paths(x, y, cs, last_only=True))

    @classmethod
    def fit_path(cls, x: np.ndarray, y: np.ndarray, cs: Sequence[float]) -> list[L1Logistic]:
        """One fitted model per C of ``cs`` (ascending), from one warm-started path per
        class: what fitting ``L1Logistic(C=c, path=cs)`` for each c gives."""
        cs = [float(c) for c in cs]
        if cs != sorted(set(cs)):
            raise ValueError("the Cs of a path must be ascending and distinct")
        classes, paths = _paths(x, y, cs)
        return [cls(C=c, path=tuple(cs))._set(classes, [p[k] for p in paths])
                for k, c in enumerate(cs)]

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        d = np.asarray(x, dtype=np.float64) @ self.coef_.T + self.intercept_
        return d[:, 0] if len(self.classes_) == 2 else d

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = _sigmoid(np.atleast_2d(self.decision_function(x).T).T)
        if len(self.classes_) == 2:
            return np.hstack([1.0 - p, p])
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        d = self.decision_function(x)
        return self.classes_[(d > 0).astype(int) if d.ndim == 1 else np.argmax(d, axis=1)]


class L1LogisticCV(ClassifierMixin, BaseEstimator):
    """``GridSearchCV(pipeline, {"est__C": cs}, cv=cv, scoring=scoring)`` for a pipeline
    ending in :class:`L1Logistic`, with one warm-started path per inner fold instead of one
    fit per fold and C: the same splits, the same preprocessing fitted on each inner training
    part, the same scorer and choice (the best mean score, the first C of a tie), then the
    pipeline refitted on all patients at that C.  Exposes ``best_score_``, ``best_params_``,
    ``best_estimator_``, ``cv_scores_`` (folds x Cs) and delegates prediction to the refit.

    Measured on one outer fold of the scale cohort (5 classes, 4 C, 3 inner folds, one
    thread), against GridSearchCV over one-vs-rest liblinear: 1,000 patients (800 x 5,000)
    3.2-3.5 s against 14.9 s (3.0 s with the Gram matrix), the same C chosen, inner AUC
    0.9966 against 0.9942, held-out 0.9980 both; 5,000 patients (4,000 x 5,000) 71 s against
    97 s (36 s with the Gram matrix), held-out AUC 0.9990 against 0.9989."""

    def __init__(self, pipeline: Any, cs: Sequence[float], cv: Any, scoring: str,
                 n_jobs: int = 1) -> None:
        self.pipeline, self.cs, self.cv, self.scoring, self.n_jobs = (pipeline, cs, cv,
                                                                       scoring, n_jobs)

    def fit(self, x: np.ndarray, y: np.ndarray) -> L1LogisticCV:
        from joblib import Parallel, delayed
        from sklearn.base import clone

        cs = sorted({float(c) for c in self.cs})
        y = np.asarray(y)
        splits = list(self.cv.split(x, y))
        scores = Parallel(n_jobs=self.n_jobs)(
            delayed(_fold_scores)(clone(self.pipeline), x, y, tr, te, cs, self.scoring)
            for tr, te in splits)
        self.cv_scores_ = np.array(scores)
        mean = self.cv_scores_.mean(axis=0)
        best = int(np.flatnonzero(mean == mean.max())[0])
        self.best_index_, self.best_score_ = best, float(mean[best])
        self.best_params_ = {"C": cs[best]}
        self.best_estimator_ = clone(self.pipeline).set_params(
            est__C=cs[best], est__path=tuple(cs)).fit(x, y)
        self.classes_ = self.best_estimator_.classes_
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.best_estimator_.decision_function(x)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.best_estimator_.predict_proba(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.best_estimator_.predict(x)


def _fold_scores(pipe: Any, x: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray,
                 cs: list[float], scoring: str) -> list[float]:
    """One inner fold of :class:`L1LogisticCV`: the pipeline's preprocessing fitted on the
    training part, the whole path of Cs fitted there, each model scored on the held-out part
    by ``scoring`` (scikit-learn's scorer, as GridSearchCV's)."""
    from sklearn.metrics import get_scorer

    prep = pipe[:-1].fit(x[tr], y[tr])
    models = type(pipe[-1]).fit_path(prep.transform(x[tr]), y[tr], cs)
    x_te = prep.transform(x[te])
    scorer = get_scorer(scoring)
    return [float(scorer(m, x_te, y[te])) for m in models]
