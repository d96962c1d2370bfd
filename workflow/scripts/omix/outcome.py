"""What kind of endpoint a column is: the one rule every step that uses the outcome follows.

Prediction, stability selection, the random forest, ranking and clustering comparisons all ask
this module, so a column cannot be a class for one step and a number for another.
"""

from __future__ import annotations

import pandas as pd

MAX_CLASS_LEVELS = 10


def is_classification(y: pd.Series, max_levels: int = MAX_CLASS_LEVELS) -> bool:
    """Text columns, and numeric columns with at most ``max_levels`` distinct values that
    repeat (at most half as many values as samples: a stage coded 1-4, a 0/1 response), are
    classes; other numeric columns are numbers."""
    y = y.dropna()
    if not pd.api.types.is_numeric_dtype(y):
        return True
    k = y.nunique()
    return k <= max_levels and (k <= 2 or k <= len(y) / 2)


def endpoint_kind(y: pd.Series) -> str:
    """``classification`` or ``regression``."""
    return "classification" if is_classification(y) else "regression"
