"""Median imputation for wide tables: scikit-learn's imputer with a faster fit.

A module of its own (imported only where scikit-learn is) because saved models refer to
``omix.impute.MedianImputer``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer


class MedianImputer(SimpleImputer):
    """``SimpleImputer(strategy="median", keep_empty_features=True)`` whose fit takes the
    column medians with ``np.nanmedian``.

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: filled below
            median = np.nanmedian(X, axis=0)
        median[np.isnan(median)] = 0 if self.keep_empty_features else np.nan
        return median
