"""What kind of endpoint a column is: the one rule every step that uses the outcome follows.

Prediction, stability selection, the random forest, ranking and clustering comparisons all ask
this module, with the kind the config resolved once on the whole sample sheet
(``outcome_kind``, ``predict.endpoint_kind``), so a column cannot be a class for one step and a
number for another.
"""

from __future__ import annotations

import re

import pandas as pd

MAX_CLASS_LEVELS = 10


def label_key(label: str) -> str | None:
    """A class label without case, spaces, dots, underscores and hyphens: two labels with one
    key ('Responder' and 'responder ', 'non-responder' and 'non_responder') are one class
    spelt two ways.  None for a number ('1.0' and '10' are different classes)."""
    try:
        float(label)
        return None
    except ValueError:
        return re.sub(r"[\s._-]+", "", str(label).lower())


def is_classification(y: pd.Series, max_levels: int = MAX_CLASS_LEVELS) -> bool:
    """Text columns, and numeric columns with at most ``max_levels`` distinct values that
    repeat (at most half as many values as samples: a stage coded 1-4, a 0/1 response), are
    classes; other numeric columns are numbers."""
    y = y.dropna()
    if not pd.api.types.is_numeric_dtype(y):
        return True
    k = y.nunique()
    return k <= max_levels and (k <= 2 or k <= len(y) / 2)


KINDS = ("auto", "classes", "numbers")


def resolve(kind: str, y: pd.Series) -> str:
    """``classes`` or ``numbers``: the config's answer, or (``auto``) :func:`is_classification`
    of ``y``.  The config resolves ``auto`` once, on the whole sample sheet
    (:func:`omix.config.check_config`), so steps that see a subset of the samples cannot
    decide differently."""
    if kind not in KINDS:
        raise ValueError(f"unknown endpoint kind {kind!r}")
    if kind == "auto":
        return "classes" if is_classification(y) else "numbers"
    return kind


def endpoint_kind(y: pd.Series, kind: str = "auto") -> str:
    """``classification`` or ``regression`` (scikit-learn's words) for :func:`resolve`."""
    return "classification" if resolve(kind, y) == "classes" else "regression"
