"""Late integration for :mod:`omix.predict`: one model per omic, combined by stacking.

A module of its own so that importing :mod:`omix.predict` (every rule's glue does) does not
import scikit-learn; saved models refer to ``omix.stack.OmicStack``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if


class OmicStack(BaseEstimator):
    """Late integration: one L2 model per omic, combined by a logistic (or linear) model fitted
    on their out-of-fold predictions (stacking, Wolpert 1992).

    Columns are grouped by their ``<omic>:`` prefix.  Each omic's model (L2 logistic with its
    C chosen by inner CV; ridge for numbers) gives out-of-fold class probabilities (values) by
    an inner k-fold; the combiner is fitted on those, so it learns how far to trust each omic
    from predictions on patients that omic's model did not see; the omic models are then
    refitted on all training patients.  ``inner_score_`` is the combiner's inner-CV score on
    the out-of-fold predictions (only the combiner is fitted on them).  Written here rather than
    with scikit-learn's StackingClassifier because that keeps neither the out-of-fold
    predictions (needed for the inner score without a third level of CV) nor per-omic column
    groups.  Inputs must be imputed and have no NaN.
    """

    def __init__(self, columns: list[str], kind: str, c_grid: tuple[float, ...],
                 n_inner: int = 3, seed: int = 0, n_jobs: int = 1) -> None:
        self.columns, self.kind, self.c_grid = columns, kind, c_grid
        self.n_inner, self.seed, self.n_jobs = n_inner, seed, n_jobs

    def _groups(self) -> dict[str, np.ndarray]:
        omics = pd.Index([str(c).split(":", 1)[0] for c in self.columns])
        return {o: np.flatnonzero(omics == o) for o in dict.fromkeys(omics)}

    def _base(self, c: float) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.kind == "regression":
            return make_pipeline(StandardScaler(), Ridge(alpha=1.0 / c))
        return make_pipeline(StandardScaler(), LogisticRegression(
            C=c, solver="lbfgs", max_iter=5000, class_weight="balanced",
            random_state=self.seed))

    def _cv(self) -> Any:
        from sklearn.model_selection import KFold, StratifiedKFold

        cls = KFold if self.kind == "regression" else StratifiedKFold
        return cls(self.n_inner, shuffle=True, random_state=self.seed)

    def _out(self, est: Any, x: np.ndarray) -> np.ndarray:
        if self.kind == "regression":
            return est.predict(x)[:, None]
        return est.predict_proba(x)[:, 1:]  # one column is redundant (they sum to 1)

    def fit(self, x: np.ndarray, y: np.ndarray) -> OmicStack:
        from sklearn.base import clone
        from sklearn.linear_model import LogisticRegression, Ridge
        from sklearn.model_selection import GridSearchCV, cross_val_predict, cross_val_score

        scoring = "r2" if self.kind == "regression" else "roc_auc_ovr"
        self.models_, self.c_, oof = {}, {}, []
        for o, idx in self._groups().items():
            grid = GridSearchCV(self._base(1.0), {f"{self._base(1.0).steps[-1][0]}__" + (
                "alpha" if self.kind == "regression" else "C"): [
                1.0 / c if self.kind == "regression" else c for c in self.c_grid]},
                cv=self._cv(), scoring=scoring, n_jobs=self.n_jobs).fit(x[:, idx], y)
            best = grid.best_estimator_
            method = "predict" if self.kind == "regression" else "predict_proba"
            p = cross_val_predict(clone(best), x[:, idx], y, cv=self._cv(), method=method)
            oof.append(p[:, None] if p.ndim == 1 else p[:, 1:])
            self.models_[o] = best
        meta_x = np.hstack(oof)
        self.meta_ = (Ridge(alpha=1.0) if self.kind == "regression" else LogisticRegression(
            C=1.0, max_iter=5000, class_weight="balanced", random_state=self.seed))
        self.inner_score_ = float(np.mean(cross_val_score(
            clone(self.meta_), meta_x, y, cv=self._cv(), scoring=scoring)))
        self.meta_.fit(meta_x, y)
        if self.kind != "regression":
            self.classes_ = self.meta_.classes_
        return self

    def _meta_x(self, x: np.ndarray) -> np.ndarray:
        return np.hstack([self._out(m, x[:, idx])
                          for (o, idx), m in zip(self._groups().items(), self.models_.values(),
                                                 strict=True)])

    @available_if(lambda self: self.kind != "regression")
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.meta_.predict_proba(self._meta_x(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.meta_.predict(self._meta_x(x))

    @property
    def feature_importances_(self) -> np.ndarray:
        """|standardised coefficient| of each feature in its omic's model times the largest
        |combiner weight| of that omic's predictions: a ranking, not an additive share."""
        out = np.zeros(len(self.columns))
        meta = np.abs(np.atleast_2d(self.meta_.coef_))
        col = 0
        for (_, idx), m in zip(self._groups().items(), self.models_.values(), strict=True):
            width = 1 if self.kind == "regression" else len(self.classes_) - 1
            weight = float(meta[:, col:col + width].max())
            col += width
            out[idx] = np.abs(np.atleast_2d(m.steps[-1][1].coef_)).max(axis=0) * weight
        return out
