"""Scoring a cohort with a frozen bundle: transform, project, assign, predict, check drift.

Nothing is refitted: every parameter comes from :class:`omix.bundle.Bundle`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .bundle import Bundle
from .errors import AnalysisError, InputDataError, warn_user
from .io import floats_from_json as _array
from .predict import contributions

log = logging.getLogger("omix.score")
PathLike = str | os.PathLike[str]

DRIFT_SMD = 0.5           # |standardised mean difference| called a shift
DRIFT_WARN_FRACTION = 0.25  # warn when more than this share of an omic's features shift
MISSING_WARN_FRACTION = 0.5  # warn when a supplied table lacks more of the model's features


def feature_name_mismatch(model: Sequence[str], table: Sequence[str]) -> str | None:
    """Why a table's feature names miss the model's, when an exporter's usual change explains
    it (Ensembl version suffixes, letter case), or None."""
    have = set(map(str, table))
    missing = [str(f) for f in model if str(f) not in have]

    def unversioned(f: str) -> str:
        return re.sub(r"\.\d+$", "", f)

    checks = [(unversioned, "they would match without version suffixes such as '.16' "
                            "(ENSG00000141510 against ENSG00000141510.16)"),
              (str.casefold, "they would match ignoring upper/lower case")]
    for norm, why in checks:
        seen = {norm(f) for f in have}
        n = sum(1 for f in missing if norm(f) in seen)
        if n:
            return f"{n} of the missing: {why}"
    return None


def transform_cohort(h5ads: dict[str, PathLike], bundle: Bundle
                     ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Every omic of a cohort to score (ingested AnnData files), transformed with the bundle's
    parameters; and per omic of the bundle whether it was supplied and how many of its input
    and model features the table lacks."""
    from .io import read_h5ad

    views, rows = {}, []
    for o, spec in bundle.normalization.items():
        if o not in h5ads:
            rows.append({"omic": o, "status": "absent", "input_features": len(
                spec["input_features"]), "input_features_missing": len(spec["input_features"]),
                "model_features": len(spec["features"]),
                "model_features_missing": len(spec["features"])})
            continue
        raw = read_h5ad(h5ads[o])
        x = pd.DataFrame(np.asarray(raw.X, dtype=float), index=raw.obs_names,
                         columns=raw.var_names)
        source = raw.uns.get("omix", {}).get("source", str(h5ads[o]))
        if spec["features"] and not x.columns.isin(spec["features"]).any():
            why = feature_name_mismatch(spec["features"], list(x.columns))
            raise InputDataError(
                f"omic {o}: none of the model's {len(spec['features'])} features is in the "
                f"table{f' ({why})' if why else ''}", file=source,
                hint="name the features as the discovery tables did (the bundle's "
                     "normalization.json lists them)")
        t = bundle.normalizers[o].transform(x, name=o)
        views[o], info = t.x, t.info
        rows.append({"omic": o, "status": "present", **info})
        n_miss, n_model = info["model_features_missing"], info["model_features"]
        if n_miss:
            if n_miss > MISSING_WARN_FRACTION * n_model:
                why = feature_name_mismatch(spec["features"], list(x.columns))
                warn_user(f"{o}: {n_miss} of the model's {n_model} features are not in "
                          f"{Path(source).name}{f' ({why})' if why else ''}; they count as "
                          "missing: the projection uses the others and the predictor imputes "
                          "them")
            log.info("%s: %d of %d model features are not in the table; the projection uses "
                     "the others", o, n_miss, n_model)
    return views, pd.DataFrame(rows)


def assign_clusters(z: pd.DataFrame, bundle: Bundle) -> pd.DataFrame:
    """Cluster of each new patient: majority of its k nearest discovery patients in factor
    space (ties: the nearest of the tied clusters); ``agreement`` = share of the k voting for
    it.  The discovery graph is not rebuilt, so discovery labels never change."""
    from sklearn.neighbors import NearestNeighbors

    ref = bundle.reference_factors.to_numpy()
    labels = np.array(bundle.frozen["reference"]["clusters"])
    k = min(int(bundle.frozen["reference"]["n_neighbors"]), len(ref))
    nn = NearestNeighbors(n_neighbors=k).fit(ref)
    dist, idx = nn.kneighbors(z.to_numpy())
    rows = []
    for s, d, i in zip(z.index, dist, idx, strict=True):
        votes = pd.Series(labels[i]).value_counts()
        top = votes[votes == votes.max()].index
        first = next(labels[j] for j in i if labels[j] in set(top))  # nearest among the tied
        rows.append({"sample_id": s, "cluster": first,
                     "agreement": float(votes[first] / k), "nearest_distance": float(d[0])})
    return pd.DataFrame(rows)


def drift_report(views: dict[str, pd.DataFrame], z: pd.DataFrame, bundle: Bundle
                 ) -> pd.DataFrame:
    """Shift of the new cohort against discovery, per omic and per factor.

    Omic rows: median |SMD| over features (SMD = (new mean - discovery mean) / discovery SD),
    share of features with |SMD| > 0.5, share of values outside the discovery range.  Factor
    rows: SMD and a two-sample Kolmogorov-Smirnov p against the discovery factor values.
    """
    from scipy import stats

    ref = bundle.frozen["reference"]
    rows = []
    for o, d in views.items():
        r = ref["omics"].get(o)
        if r is None:
            continue
        x = d.to_numpy(dtype=float)
        mu, sd = _array(r["mean"]), _array(r["sd"])
        with np.errstate(all="ignore"):
            smd = (np.nanmean(x, axis=0) - mu) / np.where(sd > 0, sd, np.nan)
            outside = (x < _array(r["min"])) | (x > _array(r["max"]))
        n_obs = int(np.sum(~np.isnan(x)))
        frac_shift = float(np.nanmean(np.abs(smd) > DRIFT_SMD)) if np.isfinite(smd).any() \
            else float("nan")
        rows.append({"level": "omic", "name": o, "n_samples": int((~np.isnan(x)).any(1).sum()),
                     "median_abs_smd": float(np.nanmedian(np.abs(smd))) if np.isfinite(
                         smd).any() else float("nan"),
                     "fraction_shifted": frac_shift,
                     "fraction_outside_range": float(outside.sum() / n_obs) if n_obs else
                     float("nan"), "smd": float("nan"), "ks_p": float("nan"),
                     "warning": bool(frac_shift > DRIFT_WARN_FRACTION)})
    zref = bundle.reference_factors
    for f in z.columns:
        sd = float(zref[f].std(ddof=1))
        smd = float((z[f].mean() - zref[f].mean()) / sd) if sd > 0 else float("nan")
        p = float(stats.ks_2samp(z[f], zref[f]).pvalue) if len(z) > 1 else float("nan")
        rows.append({"level": "factor", "name": f, "n_samples": len(z),
                     "median_abs_smd": float("nan"), "fraction_shifted": float("nan"),
                     "fraction_outside_range": float(np.mean((z[f] < zref[f].min())
                                                             | (z[f] > zref[f].max()))),
                     "smd": smd, "ks_p": p, "warning": bool(abs(smd) > DRIFT_SMD)})
    out = pd.DataFrame(rows)
    for _, r in out[out["warning"]].iterrows():
        log.warning("drift: %s %s differs from discovery (%s)", r["level"], r["name"],
                    f"{r['fraction_shifted']:.0%} of features |SMD| > {DRIFT_SMD}"
                    if r["level"] == "omic" else f"SMD {r['smd']:.2f}")
    return out


def feature_drivers(views: dict[str, pd.DataFrame], contributions: pd.DataFrame,
                    bundle: Bundle, top: int = 5) -> pd.DataFrame:
    """The measured features behind each patient's leading factor contributions.

    For the factor with the largest |contribution| to the patient's prediction (or, without
    a predictor, the patient's most extreme factor), each feature's share of the projection
    is w_dk * tau_d * y_d (y centred and scaled as in training); the ``top`` largest by
    absolute value are listed with the patient's value in discovery SD units.
    """
    frozen = bundle.mofa
    factors = bundle.frozen["factors"]
    ref = bundle.frozen["reference"]["omics"]

    def sd_units(v: str, f: str, value: float) -> float:
        # the reference arrays follow the omic's model features (the MuData's var order)
        r, names = ref.get(v), bundle.normalization.get(v, {}).get("features", [])
        if r is None or f not in names:
            return np.nan
        j = names.index(f)
        sd = float(r["sd"][j])
        return (value - float(r["mean"][j])) / sd if sd > 0 else np.nan

    rows = []
    samples = sorted(set().union(*(set(d.index) for d in views.values())), key=str)
    for s in samples:
        c = contributions[contributions["sample_id"] == s]
        if not len(c):
            continue
        lead = str(c.iloc[0]["variable"])
        if lead not in factors:
            # a measured feature leads: the measured features among the top contributions
            # (contributions of variables the patient lacks were set to 0 and dropped)
            for _, r in c[~c["variable"].isin(factors)].head(top).iterrows():
                v, f = str(r["variable"]).split(":", 1)
                value = float(views[v].loc[s, f]) if v in views and s in views[v].index \
                    and f in views[v].columns else np.nan
                if np.isfinite(value):
                    rows.append({"sample_id": s, "factor": "(direct)", "omic": v,
                                 "feature": f, "share": float(r["contribution"]),
                                 "value_sd_units": sd_units(v, f, value)})
            continue
        k = factors.index(lead)
        parts = []
        for v in frozen.views:
            if v not in views or s not in views[v].index:
                continue
            y = views[v].loc[s].reindex(frozen.features[v]).to_numpy(dtype=float)
            y = (y - frozen.means[v]) / frozen.scales[v]
            share = frozen.weights[v][:, k] * frozen.tau[v] * y
            sd = _array(ref[v]["sd"]) if v in ref else np.ones_like(y)
            mu = _array(ref[v]["mean"]) if v in ref else np.zeros_like(y)
            raw = views[v].loc[s].reindex(frozen.features[v]).to_numpy(dtype=float)
            for j in np.flatnonzero(np.isfinite(share)):
                parts.append((abs(share[j]), v, str(frozen.features[v][j]), share[j],
                              (raw[j] - mu[j]) / sd[j] if sd[j] > 0 else np.nan))
        parts.sort(key=lambda t: (-t[0], t[1], t[2]))
        for _, v, f, sh, zval in parts[:top]:
            rows.append({"sample_id": s, "factor": factors[k], "omic": v, "feature": f,
                         "share": sh, "value_sd_units": zval})
    return pd.DataFrame(rows, columns=["sample_id", "factor", "omic", "feature", "share",
                                       "value_sd_units"])


def predict_new(z: pd.DataFrame, views: dict[str, pd.DataFrame], bundle: Bundle,
                samples: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions of the frozen model and each patient's top contributions.

    Returns (predictions: sample_id, predicted, probability columns, model_features_missing;
    contributions: sample_id, variable, value, contribution).
    """
    pred = bundle.predictor
    if pred.get("model") is None:
        return pd.DataFrame({"sample_id": samples}), pd.DataFrame(
            columns=["sample_id", "variable", "contribution"])
    cols = list(pred["columns"])
    feats = pd.concat([d.reindex(samples).add_prefix(f"{o}:") for o, d in views.items()],
                      axis=1) if views else pd.DataFrame(index=samples)
    table = pd.concat([z.reindex(samples), feats], axis=1)
    x = table.reindex(columns=cols)
    n_missing = x.isna().sum(axis=1)
    est = pred["model"]
    out = pd.DataFrame({"sample_id": samples, "predicted": est.predict(x.to_numpy())})
    if hasattr(est, "predict_proba"):
        proba = est.predict_proba(x.to_numpy())
        for c, cls in enumerate(est.classes_):
            out[f"p_{cls}"] = proba[:, c]
    out["model_variables_missing"] = n_missing.to_numpy()
    out["model_variables"] = len(cols)
    c, _ = contributions(est, x.to_numpy(),
                         top=[cols.index(v) for v in pred["variables"][:20] if v in cols])
    contrib = pd.DataFrame(c, index=samples, columns=cols)
    # a variable the patient lacks was imputed: it is not a measured driver of the prediction
    contrib = contrib.mask(x.isna().to_numpy(), 0.0)
    long = contrib.rename_axis("sample_id").reset_index().melt(
        id_vars="sample_id", var_name="variable", value_name="contribution")
    long = long[long["contribution"] != 0]
    long["abs"] = long["contribution"].abs()
    long = long.sort_values(["sample_id", "abs", "variable"], ascending=[True, False, True],
                            kind="mergesort").groupby("sample_id").head(10)
    return out, long.drop(columns="abs").reset_index(drop=True)


def score_metrics(pred: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    """AUC, balanced accuracy, F1 macro (or R^2, MAE) on the patients whose outcome is known.

    Observed classes the model does not know are not scored: one that is a model class spelt
    another way ('responder' for 'Responder') is an error, since scoring it as a new class
    would report a wrong AUC; others (a class the discovery cohort did not have) are left out
    with a terminal warning."""
    from .outcome import label_key
    from .predict import _metrics

    d = pred.drop(columns="observed", errors="ignore").set_index("sample_id").join(
        y.rename("observed"), how="inner")
    d = d[d["observed"].notna()]
    if d.empty:
        return pd.DataFrame(columns=["metric", "value", "n"])
    pcols = [c for c in d.columns if c.startswith("p_")]
    if pcols:
        classes = [c[2:] for c in pcols]
        obs = d["observed"].astype(str).str.strip()
        unknown = obs[~obs.isin(classes)].value_counts().sort_index()
        keys = {label_key(c): c for c in classes if label_key(c) is not None}
        spelt = [(u, int(n), keys[label_key(u)]) for u, n in unknown.items()
                 if label_key(u) is not None and label_key(u) in keys]
        if spelt:
            u, n, c = spelt[0]
            raise AnalysisError(
                f"outcome column '{y.name}': class '{u}' ({n} patients) is the model's class "
                f"'{c}' spelt another way" + (f", and {len(spelt) - 1} more like it"
                                               if len(spelt) > 1 else ""),
                hint="write the classes as the discovery cohort did (the model's classes: "
                     + ", ".join(f"'{k}'" for k in classes) + ")")
        if len(unknown):
            warn_user(f"outcome column '{y.name}': {int(unknown.sum())} patient(s) have "
                      f"class(es) the model does not know ({', '.join(map(repr, unknown.index))}"
                      "); the metrics leave them out")
            d, obs = d[obs.isin(classes).to_numpy()], obs[obs.isin(classes)]
        obs = obs.to_numpy()
        if len(set(obs)) < 2:
            return pd.DataFrame(columns=["metric", "value", "n"])
        m = _metrics("classification", obs, d["predicted"].astype(str).to_numpy(),
                     d[pcols].to_numpy(), classes)
    else:
        num = pd.to_numeric(d["observed"], errors="coerce")
        if num.isna().any():
            raise AnalysisError(f"outcome column '{y.name}' holds text in "
                                f"{int(num.isna().sum())} of {len(num)} patients but the model "
                                "predicts a number", hint="give the observed values as numbers, "
                                "or set apply.<name>.outcome to the column that holds them")
        m = _metrics("regression", num.to_numpy(dtype=float), d["predicted"].to_numpy(), None, [])
    return pd.DataFrame({"metric": list(m), "value": list(m.values()), "n": len(d)})


# --------------------------------------------------------------------------------------------
# per-patient report
# --------------------------------------------------------------------------------------------


def qc_flags(z: pd.DataFrame, views: Mapping[str, pd.DataFrame], clusters: pd.DataFrame,
              b: Bundle, order: list[str]) -> pd.DataFrame:
    """Per patient: omics not measured, model features missing, values outside the discovery
    range, extreme factor values, an uncertain stratum."""
    ref = b.frozen["reference"]
    zref = b.reference_factors.to_numpy()
    zs = (z.to_numpy() - zref.mean(0)) / zref.std(0, ddof=1)
    agree = clusters.set_index("sample_id")["agreement"]
    flags: dict[str, list[str]] = {s: [] for s in order}
    for o in b.normalization:
        d = views.get(o)
        for s in order:
            if d is None or s not in d.index or d.loc[s].isna().all():
                flags[s].append(f"{o} not measured")
                continue
            row = d.loc[s].to_numpy(dtype=float)
            miss = float(np.mean(np.isnan(row)))
            if miss > 0.2:
                flags[s].append(f"{o}: {miss:.0%} of model features missing")
            r = ref["omics"].get(o)
            if r is not None:
                with np.errstate(invalid="ignore"):
                    out = np.nanmean((row < _array(r["min"])) | (row > _array(r["max"])))
                if out > 0.1:
                    flags[s].append(f"{o}: {out:.0%} of values outside the discovery range")
    for i, s in enumerate(order):
        big = [f for f, v in zip(z.columns, zs[i], strict=True) if abs(v) > 3]
        if big:
            flags[s].append(f"factor value beyond 3 discovery SD: {', '.join(big)}")
        if agree.get(s, 1.0) < 0.5:
            flags[s].append(f"uncertain stratum ({agree[s]:.0%} neighbour agreement)")
    return pd.DataFrame({"sample_id": order, "n_flags": [len(flags[s]) for s in order],
                         "flags": [";".join(flags[s]) for s in order]})
