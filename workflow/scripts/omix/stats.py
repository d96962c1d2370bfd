"""Associations of factors and clusters with clinical columns, survival, and a bias check.

Every factor and the cluster assignment are tested against every clinical column of the sample
sheet with a test chosen by the column's type; survival (time, event) gets a Cox model per
factor and Kaplan-Meier + log-rank per cluster (lifelines).  Benjamini-Hochberg (statsmodels)
runs across all tests of one table.  Columns named as batch/site are also checked for
confounding with the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError, ConfigError

log = logging.getLogger("omix.stats")

MIN_GROUP = 3  # a class needs this many samples to enter a test


@dataclass(frozen=True)
class SurvivalSpec:
    """time (event time for events), event (1 = event), optional censor_time (time otherwise)."""

    time: str
    event: str
    censor_time: str | None = None
    time_unit: str | None = None

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> SurvivalSpec | None:
        if not cfg or not cfg.get("time") or not cfg.get("event"):
            return None
        return cls(time=cfg["time"], event=cfg["event"], censor_time=cfg.get("censor_time"),
                   time_unit=cfg.get("time_unit"))

    @property
    def axis_label(self) -> str:
        """The time axis of a Kaplan-Meier plot, with its unit."""
        return (f"time ({self.time_unit})" if self.time_unit else
                "time (unit not set: survival.time_unit)")


_CODED_EVENT = r"\s*([01])\s*:.*"


def _event_codes(col: pd.Series) -> pd.Series:
    """An event column as numbers; cBioPortal's coded statuses ('1:DECEASED', '0:LIVING',
    '1:Recurred/Progressed') as their code, when every value given is coded that way."""
    given = col.dropna().astype(str)
    if len(given) and col.dtype == object and given.str.fullmatch(_CODED_EVENT).all():
        return pd.to_numeric(col.astype(str).str.extract(_CODED_EVENT)[0].where(col.notna()))
    return pd.to_numeric(col, errors="coerce")


def survival_frame(sheet: pd.DataFrame, spec: SurvivalSpec) -> pd.DataFrame:
    """Columns ``time``, ``event`` for samples with both known; checks values."""
    for col in (spec.time, spec.event, spec.censor_time):
        if col is not None and col not in sheet.columns:
            raise ConfigError(f"survival column '{col}' is not in the sample sheet",
                              where="survival", hint="name columns of the sample sheet")
    for key, col in (("event", spec.event), ("time", spec.time),
                     ("censor_time", spec.censor_time)):
        if col is None:
            continue
        num = pd.to_numeric(_event_codes(sheet[col]) if key == "event" else sheet[col],
                            errors="coerce")
        text = num.isna() & sheet[col].notna()
        if text.any():
            raise ConfigError(f"survival column '{col}' holds {int(text.sum())} value(s) that "
                              f"are not numbers (first at sample row "
                              f"{int(np.argmax(text.to_numpy())) + 2} of the sample sheet)",
                              where=f"survival.{key}",
                              hint="code events as 1 (event) and 0 (censored)" if key == "event"
                              else "times are numbers (e.g. days since diagnosis)")
    ev = _event_codes(sheet[spec.event])
    bad = ev.notna() & ~ev.isin([0, 1])
    if bad.any():
        raise ConfigError(f"survival event column '{spec.event}' holds values other than 0/1 "
                          f"(first at sample row {int(np.argmax(bad.to_numpy())) + 2})",
                          where="survival.event", hint="code events as 1 and censoring as 0")
    t = pd.to_numeric(sheet[spec.time], errors="coerce")
    if spec.censor_time is not None:
        tc = pd.to_numeric(sheet[spec.censor_time], errors="coerce")
        t = t.where(ev == 1, tc)
    neg = t < 0
    if neg.any():
        raise ConfigError(f"negative survival time (first at sample row "
                          f"{int(np.argmax(neg.to_numpy())) + 2} of the sample sheet)",
                          where="survival.time", hint="times must be >= 0 (days since diagnosis)")
    out = pd.DataFrame({"time": t, "event": ev}).dropna()
    if len(out) < 2 * MIN_GROUP or out["event"].sum() < 2:
        raise AnalysisError(f"{len(out)} samples with survival data and "
                            f"{int(out['event'].sum())} events: too few for survival analysis",
                            hint="check the survival columns or set survival: null")
    return out


def column_kind(s: pd.Series, kind: str = "auto") -> str | None:
    """'categorical', 'continuous' or None (not testable: constant, unique text, too sparse).

    Classes or numbers by the one rule of :mod:`omix.outcome` (``kind``: the config's
    resolved answer for the outcome, ``auto`` for other clinical columns)."""
    from .outcome import MAX_CLASS_LEVELS, resolve

    v = s.dropna()
    if v.nunique() < 2:
        return None
    if resolve(kind, v) == "numbers":
        return "continuous" if pd.api.types.is_numeric_dtype(v) else None
    counts = v.astype(str).value_counts()
    if (counts >= MIN_GROUP).sum() < 2 or v.nunique() > max(MAX_CLASS_LEVELS, 0.5 * len(v)):
        return None
    return "categorical"


def _cat_groups(x: pd.Series, g: pd.Series) -> list[np.ndarray]:
    g = g.astype(str)
    counts = g.value_counts()
    return [x[g == lev].to_numpy() for lev in sorted(counts[counts >= MIN_GROUP].index)]


def test_factor(x: pd.Series, y: pd.Series, kind: str | None = None) -> dict[str, Any] | None:
    """One factor against one clinical column (``kind``: its :func:`column_kind` decided on
    the whole sheet; None: decided here)."""
    from scipy import stats

    ok = x.notna() & y.notna()
    x, y = x[ok], y[ok]
    kind = column_kind(y) if kind is None else kind
    if kind == "continuous":
        rho, p = stats.spearmanr(x, y.astype(float))
        return {"test": "spearman", "statistic": float(rho), "effect": float(rho), "p": float(p),
                "n": len(x)}
    if kind == "categorical":
        groups = _cat_groups(x, y)
        if len(groups) < 2:
            return None
        h, p = stats.kruskal(*groups)
        n, k = sum(map(len, groups)), len(groups)
        return {"test": "kruskal", "statistic": float(h),
                "effect": float(np.clip((h - k + 1) / (n - k), 0, 1)), "p": float(p),
                "n": int(n)}
    return None


def test_clusters(c: pd.Series, y: pd.Series, kind: str | None = None
                  ) -> dict[str, Any] | None:
    """The cluster assignment against one clinical column (``kind`` as for test_factor)."""
    from scipy import stats

    ok = c.notna() & y.notna()
    c, y = c[ok].astype(str), y[ok]
    if c.nunique() < 2:
        return None
    kind = column_kind(y) if kind is None else kind
    if kind == "continuous":
        groups = _cat_groups(y.astype(float), c)
        if len(groups) < 2:
            return None
        h, p = stats.kruskal(*groups)
        n, k = sum(map(len, groups)), len(groups)
        return {"test": "kruskal", "statistic": float(h),
                "effect": float(np.clip((h - k + 1) / (n - k), 0, 1)), "p": float(p),
                "n": int(n)}
    if kind == "categorical":
        tab = pd.crosstab(c, y.astype(str))
        chi2, p, _, _ = stats.chi2_contingency(tab)
        n = int(tab.to_numpy().sum())
        v = float(np.sqrt(chi2 / (n * (min(tab.shape) - 1)))) if min(tab.shape) > 1 else 0.0
        return {"test": "chi2", "statistic": float(chi2), "effect": v, "p": float(p), "n": n}
    return None


def cox_factor(x: pd.Series, surv: pd.DataFrame) -> dict[str, Any] | None:
    """Univariate Cox model of survival on one (standardised) factor: hazard ratio per SD."""
    from lifelines import CoxPHFitter

    df = surv.join(x.rename("x"), how="inner").dropna()
    if len(df) < 2 * MIN_GROUP or df["x"].std() == 0:
        return None
    df["x"] = (df["x"] - df["x"].mean()) / df["x"].std()
    cph = CoxPHFitter()
    cph.fit(df, duration_col="time", event_col="event")
    row = cph.summary.loc["x"]
    return {"test": "cox", "statistic": float(row["z"]), "effect": float(row["exp(coef)"]),
            "p": float(row["p"]), "n": len(df)}


def logrank_clusters(c: pd.Series, surv: pd.DataFrame) -> dict[str, Any] | None:
    from lifelines.statistics import multivariate_logrank_test

    df = surv.join(c.rename("c"), how="inner").dropna()
    if df["c"].nunique() < 2:
        return None
    res = multivariate_logrank_test(df["time"], df["c"].astype(str), df["event"])
    return {"test": "logrank", "statistic": float(res.test_statistic), "effect": np.nan,
            "p": float(res.p_value), "n": len(df)}


def associations(factors: pd.DataFrame, clusters: pd.Series, sheet: pd.DataFrame,
                 survival: SurvivalSpec | None = None,
                 exclude: Sequence[str] = (), kinds: Mapping[str, str] | None = None
                 ) -> pd.DataFrame:
    """All factor/cluster x clinical-column tests with BH q across the whole table.

    Each column is classes or numbers as decided on the whole sample sheet (``kinds``: the
    config's resolved answer for the outcome), not on the patients that have factors."""
    from statsmodels.stats.multitest import multipletests

    col_kind = {c: column_kind(sheet[c], (kinds or {}).get(c, "auto")) for c in sheet.columns}
    sheet = sheet.reindex(factors.index)
    skip = set(exclude)
    if survival is not None:
        skip |= {survival.time, survival.event, survival.censor_time}
    rows = []
    for col in sheet.columns:
        if col in skip:
            continue
        y, kind = sheet[col], col_kind[col]
        if kind is None:
            continue
        for f in factors.columns:
            r = test_factor(factors[f], y, kind)
            if r:
                rows.append({"variable": f, "clinical": col, **r})
        r = test_clusters(clusters.reindex(factors.index), y, kind)
        if r:
            rows.append({"variable": "cluster", "clinical": col, **r})
    if survival is not None:
        surv = survival_frame(sheet, survival)
        for f in factors.columns:
            r = cox_factor(factors[f], surv)
            if r:
                rows.append({"variable": f, "clinical": "survival", **r})
        r = logrank_clusters(clusters.reindex(factors.index), surv)
        if r:
            rows.append({"variable": "cluster", "clinical": "survival", **r})
    out = pd.DataFrame(rows, columns=["variable", "clinical", "test", "statistic", "effect", "p",
                                      "n"])
    out["q"] = multipletests(out["p"].fillna(1.0), method="fdr_bh")[1] if len(out) else []
    return out.sort_values(["q", "variable", "clinical"], kind="mergesort").reset_index(drop=True)


def bias_check(factors: pd.DataFrame, sheet: pd.DataFrame, batch_columns: Sequence[str],
               outcome: str | None, alpha: float = 0.05) -> pd.DataFrame:
    """Per batch column: factors associated with it, and its confounding with the outcome."""
    from scipy import stats

    rows = []
    sheet = sheet.reindex(factors.index)
    for col in batch_columns:
        if col not in sheet.columns:
            raise ConfigError(f"bias column '{col}' is not in the sample sheet",
                              where="bias.columns", hint="name columns of the sample sheet")
        b = sheet[col]
        assoc = [(f, test_factor(factors[f], b)) for f in factors.columns]
        hits = [f for f, r in assoc if r and r["p"] < alpha / max(len(assoc), 1)]
        conf_p, conf_v = np.nan, np.nan
        if outcome is not None:
            both = sheet[[col, outcome]].dropna()
            if both[col].nunique() > 1 and both[outcome].nunique() > 1:
                tab = pd.crosstab(both[col].astype(str), both[outcome].astype(str))
                chi2, conf_p, _, _ = stats.chi2_contingency(tab)
                conf_v = float(np.sqrt(chi2 / (tab.to_numpy().sum() * (min(tab.shape) - 1))))
        confounded = bool(conf_p < alpha) if not np.isnan(conf_p) else False
        rows.append({"column": col, "factors_associated": ",".join(hits) or "none",
                     "outcome_confounding_p": conf_p, "outcome_cramers_v": conf_v,
                     "warning": ("batch is confounded with the outcome: outcome effects and "
                                 "batch effects cannot be told apart" if confounded else
                                 "factors track batch: consider normalize.batch"
                                 if hits else "")})
        if rows[-1]["warning"]:
            log.warning("bias check, column %s: %s", col, rows[-1]["warning"])
    return pd.DataFrame(rows, columns=["column", "factors_associated", "outcome_confounding_p",
                                       "outcome_cramers_v", "warning"])
