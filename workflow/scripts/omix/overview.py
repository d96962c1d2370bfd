"""The report's landing page: the cohort's headline results, and its key tables as HTML.

``overview.html`` is an HTML fragment (one ``<div>`` with its own scoped style) that the
Snakemake report embeds in its first page (``workflow/report/workflow.rst``) and also lists as
a result.  The key tables (``report/tables/*.html``) render the TSVs a reader would otherwise
have to download: the ranked biomarkers, the prediction metrics, the associations, the
clustering choice.  Cohort-level figures only; no patient-level value is written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .html import environment
from .io import atomic_path, read_tsv
from .summary import TABLES, headline

log = logging.getLogger("omix.overview")
PathLike = str | os.PathLike[str]
TOP = 10

# key tables: (source, a key of summary.TABLES; title; rows kept)
KEY_TABLES: dict[str, tuple[str, str, int | None]] = {
    "biomarkers": ("ranked", "Ranked biomarkers (top 100)", 100),
    "prediction": ("metrics", "Prediction: nested cross-validation", None),
    "survival": ("survival", "Survival: nested cross-validation", None),
    "associations": ("associations", "Associations of factors and clusters with clinical "
                     "variables (smallest q first, top 100)", 100),
    "clustering": ("resolution", "Clustering: every partition tried and the PCA + k-means "
                   "baseline", None),
}


def _fmt(v: object) -> str:
    """Numbers for a reader: 3 decimals, small p/q-values in scientific notation."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return ""
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.1e}"
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)


def _rows(df: pd.DataFrame, columns: Mapping[str, str]) -> dict[str, object]:
    """A table for the template: headers and formatted cells of the columns present."""
    cols = [c for c in columns if c in df.columns]
    return {"header": [columns[c] for c in cols],
            "numeric": [pd.api.types.is_numeric_dtype(df[c]) for c in cols],
            "rows": [[_fmt(v) for v in r] for r in df[cols].itertuples(index=False)]}


def overview_html(paths: Mapping[str, PathLike], cohort: str, outcome: str | None,
                  endpoint: str | None) -> str:
    h = headline(paths, top=TOP)
    omics = list(h.per_omic or h.variance)
    cohort_table = {"header": ["omic", "patients measured", "features in the model",
                               "variance explained by the factors (%)"],
                    "numeric": [False, True, True, True],
                    "rows": [[o, _fmt(h.per_omic.get(o)), _fmt(h.features.get(o)),
                              "" if o not in h.variance else f"{h.variance[o]:.1f}"]
                             for o in omics]}
    top = None
    if h.top is not None:
        top = _rows(h.top, {"rank": "rank", "feature": "feature", "omic": "omic",
                        "top_factor": "factor", "factor_outcome_q": "factor-outcome q",
                        "selection_probability": "stability selection probability",
                        "q_value": "stability q", "consensus_rank": "consensus rank"})
    models = []
    if h.prediction is not None:
        models.append(("this workflow (model chosen in the inner CV)", h.prediction))
    labels = {"l2_features": "plain L2 logistic/ridge on all features",
              "random_forest": "plain random forest on all features"}
    models += [(labels.get(b, b), e) for b, e in h.baselines.items()]
    if h.prevalence is not None:
        models.append(("no information (prevalence)", h.prevalence))
    prediction = None
    if models:
        prediction = {"metric": models[0][1].metric.upper().replace("_", " "),
                      "rows": [[name, _fmt(e.mean), f"{_fmt(e.ci_low)} - {_fmt(e.ci_high)}"]
                               for name, e in models]}
    return environment().get_template("overview.html.j2").render(
        cohort=cohort, outcome=outcome, endpoint=endpoint, h=h, cohort_table=cohort_table,
        top=top, prediction=prediction, fmt=_fmt,
        clusters=[[c, n] for c, n in h.cluster_sizes.items()])


def key_table_html(path: PathLike, title: str, keep: int | None, cohort: str) -> str:
    df = read_tsv(path)
    if "q" in df.columns:
        df = df.sort_values(["q", "p"], kind="stable")
    n = len(df)
    if keep is not None:
        df = df.head(keep)
    table = _rows(df, {c: c.replace("_", " ") for c in df.columns})
    return environment().get_template("table.html.j2").render(
        title=title, cohort=cohort, table=table, n_total=n, source=Path(path).name)


def write_overview(paths: Mapping[str, PathLike], out_html: PathLike,
                   tables: Mapping[str, PathLike], cohort: str, outcome: str | None,
                   endpoint: str | None) -> None:
    """The landing-page fragment and the key tables.

    ``paths`` maps keys of :data:`omix.summary.TABLES` to the run's tables (a step the config
    turned off has none); ``tables`` maps a key of :data:`KEY_TABLES` to its output path.  A key
    table whose source is absent gets a one-line page saying so.
    """
    with atomic_path(out_html) as tmp:
        Path(tmp).write_text(overview_html(paths, cohort, outcome, endpoint))
    for key, out in tables.items():
        src, title, keep = KEY_TABLES[key]
        if src in paths:
            body = key_table_html(paths[src], title, keep, cohort)
        else:
            body = environment().get_template("table.html.j2").render(
                title=title, cohort=cohort, table=None, n_total=0, source=TABLES[src])
        with atomic_path(out) as tmp:
            Path(tmp).write_text(body)
    log.info("report overview written: %s and %d table(s)", out_html, len(tables))
