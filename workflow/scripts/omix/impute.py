"""Median imputation for wide tables: scikit-learn's imputer with a faster fit.

A module of its own (imported only where scikit-learn is) because saved models refer to
``omix.impute.MedianImputer``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer


def column_medians(x: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
    """``np.nanmedian(x, axis=0)`` (NaN for a column with no value), the same numbers, faster
    (``missing``: ``np.isnan(x)``, if the caller has it).

    Columns are partitioned in rows of a transposed copy, those with the same number of
    values together (a missing value becomes +inf, so the middle ones are the values' own).
    ``np.nanmedian`` goes through a masked array below 600 rows and one Python call per
    column above; on 5,000 columns (3,000 with 10 % missing), median of 5 runs: 0.033 s
    against 0.101 s at 533 rows (a 3-fold inner split of 800), 0.050 against 0.111 at 800,
    0.17 against 0.25 at 2,000, and about the same at 5,000 (0.65 against 0.61).
    """
    n, d = x.shape
    if missing is None:
        missing = np.isnan(x)
    count = n - np.count_nonzero(missing, axis=0)
    out = np.full(d, np.nan, dtype=x.dtype)
    full = np.flatnonzero(count == n)
    if len(full):
        out[full] = np.median(np.ascontiguousarray(x[:, full].T), axis=1)
    part = np.flatnonzero((count < n) & (count > 0))
    if len(part):
        rows = np.ascontiguousarray(x[:, part].T)
        rows[missing[:, part].T] = np.inf
        c = count[part]
        for k in np.unique(c):
            sel = np.flatnonzero(c == k)
            lo, hi = (k - 1) // 2, k // 2
            p = np.partition(rows[sel], (lo, hi) if lo != hi else lo, axis=1)
            out[part[sel]] = (p[:, lo] + p[:, hi]) / 2   # np.median's mean of the middle two
    return out


class MedianImputer(SimpleImputer):
    """``SimpleImputer(strategy="median", keep_empty_features=True)`` whose fit takes the
    column medians with :func:`column_medians`.

    Written because scikit-learn computes them on a masked array (``np.ma.median``), which
    sorts through the mask: 0.61 s for one fit on 800 x 5,000 with 10 % missing on this
    machine, against 0.05 s here, the same medians (tested).  A nested CV fits the imputer of
    every candidate in every inner fold (about 40 fits per outer fold), so this was a third of
    ``predict``'s time at 1,000 patients.  Everything else (validation, transform, empty
    features filled with 0, ``statistics_``) is scikit-learn's.
    """

    def __init__(self) -> None:
        super().__init__(strategy="median", keep_empty_features=True)

    def _dense_fit(self, X: Any, strategy: str, missing_values: Any, fill_value: Any
                   ) -> np.ndarray:
        nan_marker = isinstance(missing_values, float) and np.isnan(missing_values)
        if strategy != "median" or not nan_marker or X.dtype.kind != "f":
            return super()._dense_fit(X, strategy, missing_values, fill_value)
        missing = np.isnan(X)
        self._fit_indicator(missing)
        median = column_medians(X, missing)
        median[np.isnan(median)] = 0 if self.keep_empty_features else np.nan
        return median
