"""New-cohort mode: a frozen discovery bundle scores new patients without refitting anything.

The bundle (``results/<cohort>/model/``) holds only what the discovery cohort taught:

* ``normalization.json``: per omic, the kind and options, the feature set each per-sample
  statistic is taken over (library size, PQN quotients, sample medians), the library-size
  target and each feature's mean share of the library, the PQN reference spectrum, the
  imputation values of censored cells, and the features kept for the model;
* ``frozen.json``: the MOFA+ weights, noise precisions, centring and scaling of each view, the
  discovery factors with their cluster labels (kNN assignment of new patients), per-feature
  and per-factor reference distributions (drift), Kaplan-Meier curves of the clusters, and
  the nested-CV estimate of the prediction procedure (``prediction_cv``, model choice
  included);
* ``predictor.joblib``: the refitted predictive model of the ``predict`` rule and its input
  columns, a byte copy of ``predict/final_model.joblib``;
* ``manifest.json``: package versions, a hash of the resolved config, checksums of every
  feature list and of the files above.

JSON rather than a pickle for everything but the scikit-learn estimator: readable, diffable,
byte-reproducible, and loading it runs no code.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError, ConfigError
from .io import atomic_path, package_versions
from .io import floats_from_json as _array
from .io import json_floats as _floats
from .mofa import FrozenMofa, factor_table, read_mofa_model
from .pp import Normalizer
from .predict import CHOICE, contributions

log = logging.getLogger("omix.apply")
PathLike = str | os.PathLike[str]

BUNDLE_FILES = ("manifest.json", "normalization.json", "frozen.json", "predictor.joblib")
DRIFT_SMD = 0.5           # |standardised mean difference| called a shift
DRIFT_WARN_FRACTION = 0.25  # warn when more than this share of an omic's features shift


def _dump(obj: Any, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _sha256_text(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# the bundle
# --------------------------------------------------------------------------------------------
def normalization_spec(a: Any) -> dict[str, Any]:
    """The fitted normaliser of ``a`` (a normalised AnnData) as the bundle stores it."""
    from .pp import Normalizer

    return Normalizer.of(a).to_json()


def write_bundle(outdir: PathLike, *, mdata: Any, norm: dict[str, Any],
                 model_hdf5: PathLike, clusters: pd.DataFrame, sheet: pd.DataFrame,
                 survival: Any, n_neighbors: int,
                 predictor: PathLike | None, cv_metrics: pd.DataFrame | None,
                 config: dict[str, Any], cohort: str) -> None:
    """Write the four bundle files to ``outdir`` (see the module docstring)."""
    import joblib

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    normalization = {o: normalization_spec(a) for o, a in norm.items()}
    _dump(normalization, out / "normalization.json")

    res = read_mofa_model(model_hdf5)
    views = list(res.weights)
    if views != list(mdata.mod):
        raise AnalysisError("model file views differ from the MuData's",
                            hint="re-run integrate")
    names = list(mdata.uns["mofa"]["factors"])
    frozen = FrozenMofa.from_parameters(
        mdata, [res.likelihoods[v] for v in views], [res.weights[v].to_numpy() for v in views],
        [res.tau[v] for v in views], names, weights2=[res.weights2[v] for v in views],
        scale_views=bool(config["integrate"]["scale_views"]))
    z = factor_table(mdata)
    labels = clusters.set_index("sample_id")["cluster"].reindex(z.index)
    ref_omics = {}
    for o, a in mdata.mod.items():
        x = np.asarray(a.X, dtype=float)
        with np.errstate(all="ignore"):
            ref_omics[o] = {"mean": _floats(np.nanmean(x, axis=0)),
                            "sd": _floats(np.nanstd(x, axis=0, ddof=1)),
                            "min": _floats(np.nanmin(x, axis=0)),
                            "max": _floats(np.nanmax(x, axis=0))}
    doc: dict[str, Any] = {
        "factors": names,
        # the factors' prior is N(0, 1) (no ARD on factors); the weights' ARD and
        # spike-and-slab priors are already folded into the posterior weights below
        "prior": {"factors": "normal(0, 1)"},
        "mofa": {v: {"features": [str(f) for f in frozen.features[v]],
                     "mean": _floats(frozen.means[v]), "scale": float(frozen.scales[v]),
                     "weights": [_floats(r) for r in frozen.weights[v]],
                     "tau": _floats(frozen.tau[v]),
                     **({"weights2": [_floats(r) for r in frozen.weights2[v]]}
                        if v in frozen.weights2 else {})} for v in frozen.views},
        "reference": {"factors": [_floats(r) for r in z.to_numpy()],
                      "clusters": [str(c) for c in labels],
                      "n_neighbors": int(n_neighbors), "omics": ref_omics},
        "survival": _km_curves(sheet, survival, labels) if survival is not None else None,
    }
    pred: dict[str, Any] = {"model": None, "endpoint": None}
    if predictor is not None:
        pred = joblib.load(predictor)
        if cv_metrics is not None:
            # the honest estimate: the whole procedure, model choice included
            honest = cv_metrics["model"] == CHOICE
            sel = cv_metrics[honest if honest.any() else cv_metrics["model"] == pred["kind"]]
            doc["prediction_cv"] = {
                r["metric"]: {"mean": float(r["mean"]), "ci_low": float(r["ci_low"]),
                              "ci_high": float(r["ci_high"])} for _, r in sel.iterrows()}
    _dump(doc, out / "frozen.json")
    with atomic_path(out / "predictor.joblib") as tmp:
        if predictor is not None:
            # copied, not re-pickled: a loaded forest re-pickles with different padding bytes
            shutil.copyfile(predictor, tmp)
        else:
            joblib.dump(pred, tmp)

    # the discovery's config: what is scored with the bundle is not part of it
    cfg_json = json.dumps({k: v for k, v in config.items() if k != "apply"}, sort_keys=True,
                          default=str)
    manifest = {
        "discovery_cohort": cohort, "n_samples": int(mdata.n_obs), "factors": names,
        "endpoint": pred["endpoint"],
        "omics": {o: {"kind": s["kind"], "n_model_features": len(s["features"]),
                      "model_features_sha256": _sha256_text(s["features"]),
                      "input_features_sha256": _sha256_text(s["input_features"])}
                  for o, s in normalization.items()},
        "config_sha256": hashlib.sha256(cfg_json.encode()).hexdigest(),
        "versions": package_versions(),
        "files": {f: _sha256_file(out / f) for f in BUNDLE_FILES if f != "manifest.json"},
    }
    _dump(manifest, out / "manifest.json")
    log.info("frozen bundle: %d omics, %d factors, %d discovery samples, predictor: %s",
             len(normalization), len(names), mdata.n_obs,
             manifest["endpoint"] or "none (no endpoint)")


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _km_curves(sheet: pd.DataFrame, spec: Any, labels: pd.Series) -> dict[str, Any] | None:
    """Kaplan-Meier survival of each discovery cluster (lifelines), as step functions."""
    from lifelines import KaplanMeierFitter

    from .stats import survival_frame

    try:
        sf = survival_frame(sheet, spec)
    except (AnalysisError, ConfigError):
        return None
    sf = sf.join(labels.rename("cluster"), how="inner").dropna()
    curves = {}
    for c, d in sf.groupby("cluster", sort=True):
        km = KaplanMeierFitter().fit(d["time"], d["event"])
        s = km.survival_function_.iloc[:, 0]
        curves[str(c)] = {"time": _floats(s.index), "survival": _floats(s.to_numpy()),
                          "n": len(d), "events": int(d["event"].sum())}
    return {"time_column": spec.time, "curves": curves}


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    normalization: dict[str, Any]
    frozen: dict[str, Any]
    predictor: dict[str, Any]

    @classmethod
    def load(cls, path: PathLike) -> Bundle:
        import joblib

        p = Path(path)
        missing = [f for f in BUNDLE_FILES if not (p / f).is_file()]
        if missing:
            raise ConfigError(f"model bundle {p} lacks {', '.join(missing)}",
                              hint="point apply.<name>.model at results/<cohort>/model of a "
                                   "finished discovery run")
        man = json.loads((p / "manifest.json").read_text())
        for f, digest in man["files"].items():
            if _sha256_file(p / f) != digest:
                raise ConfigError(f"model bundle file {p / f} does not match its checksum in "
                                  "manifest.json", hint="the bundle was modified; re-run the "
                                                        "discovery workflow to rebuild it")
        frozen = json.loads((p / "frozen.json").read_text())
        predictor = joblib.load(p / "predictor.joblib")
        predictor["cv"] = frozen.get("prediction_cv", {})
        b = cls(p, man, json.loads((p / "normalization.json").read_text()), frozen, predictor)
        _ = b.normalizers  # an old bundle format is an error here, not halfway through
        return b

    @functools.cached_property
    def normalizers(self) -> dict[str, Normalizer]:
        """The discovery's fitted normaliser of each omic."""
        return {o: Normalizer.from_json(d, source=f"{self.path / 'normalization.json'} ({o})")
                for o, d in self.normalization.items()}

    @functools.cached_property
    def reference_factors(self) -> pd.DataFrame:
        """The discovery patients' factor values (no IDs), decoded once."""
        return pd.DataFrame(np.array([_array(r) for r in self.frozen["reference"]["factors"]]),
                            columns=self.frozen["factors"])

    @functools.cached_property
    def mofa(self) -> FrozenMofa:
        """The frozen MOFA+ model, decoded once."""
        fz = self.frozen
        views = list(fz["mofa"])
        return FrozenMofa(
            views=views,
            features={v: pd.Index(fz["mofa"][v]["features"]) for v in views},
            means={v: _array(fz["mofa"][v]["mean"]) for v in views},
            scales={v: float(fz["mofa"][v]["scale"]) for v in views},
            weights={v: np.array([_array(r) for r in fz["mofa"][v]["weights"]]) for v in views},
            tau={v: _array(fz["mofa"][v]["tau"]) for v in views},
            factors=list(fz["factors"]),
            weights2={v: np.array([_array(r) for r in fz["mofa"][v]["weights2"]])
                      for v in views if "weights2" in fz["mofa"][v]})


# --------------------------------------------------------------------------------------------
# transforming new samples with frozen parameters
# --------------------------------------------------------------------------------------------
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
        t = bundle.normalizers[o].transform(x, name=o)
        views[o], info = t.x, t.info
        rows.append({"omic": o, "status": "present", **info})
        if info["model_features_missing"]:
            log.info("%s: %d of %d model features are not in the table; the projection uses "
                     "the others", o, info["model_features_missing"], info["model_features"])
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
    """AUC, balanced accuracy, F1 macro (or R^2, MAE) on the patients whose outcome is known."""
    from .predict import _metrics

    d = pred.drop(columns="observed", errors="ignore").set_index("sample_id").join(
        y.rename("observed"), how="inner")
    d = d[d["observed"].notna()]
    if d.empty:
        return pd.DataFrame(columns=["metric", "value", "n"])
    pcols = [c for c in d.columns if c.startswith("p_")]
    if pcols:
        classes = [c[2:] for c in pcols]
        obs = d["observed"].astype(str).to_numpy()
        if len(set(obs)) < 2:
            return pd.DataFrame(columns=["metric", "value", "n"])
        m = _metrics("classification", obs, d["predicted"].astype(str).to_numpy(),
                     d[pcols].to_numpy(), classes)
    else:
        m = _metrics("regression", d["observed"].astype(float).to_numpy(),
                     d["predicted"].to_numpy(), None, [])
    return pd.DataFrame({"metric": list(m), "value": list(m.values()), "n": len(d)})


# --------------------------------------------------------------------------------------------
# per-patient report
# --------------------------------------------------------------------------------------------
def patient_pages(outdir: PathLike, *, bundle: Bundle, factors: pd.DataFrame,
                  clusters: pd.DataFrame, predictions: pd.DataFrame,
                  contributions: pd.DataFrame, qc: pd.DataFrame, drift: pd.DataFrame,
                  cohort_name: str, drivers: pd.DataFrame | None = None) -> list[Path]:
    """One small HTML page per patient and an index, plots inline (SVG), no external files.

    IDs shown are those of the results (pseudonyms when pseudonymisation is on).
    """
    import matplotlib

    matplotlib.use("Agg")
    import io as _io

    import matplotlib.pyplot as plt

    from . import pl  # noqa: F401  (deterministic SVG settings)

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    zref = bundle.reference_factors
    surv = bundle.frozen.get("survival")
    cv = bundle.predictor.get("cv", {})
    endpoint = bundle.predictor.get("endpoint")
    drift_warn = drift[drift["warning"]]
    pages = []

    def svg(fig: Any) -> str:
        buf = _io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
        text = buf.getvalue()
        return text[text.index("<svg"):]

    for sid in factors.index:
        cl = clusters.set_index("sample_id").loc[sid]
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
        ax = axes[0]
        if surv and surv.get("curves"):
            for c, cur in sorted(surv["curves"].items()):
                mine = c == cl["cluster"]
                ax.step(_array(cur["time"]), _array(cur["survival"]), where="post",
                        lw=2.5 if mine else 1, color="#d95f02" if mine else "#999999",
                        label=f"{c} (n={cur['n']})" + (" - this patient" if mine else ""))
            ax.set_xlabel(surv.get("time_column", "time"))
            ax.set_ylabel("survival (discovery)")
            ax.set_ylim(0, 1.02)
            ax.legend(frameon=False, fontsize=7)
        else:
            ax.text(0.5, 0.5, "no survival data in the discovery bundle", ha="center",
                    va="center", fontsize=8)
            ax.set_axis_off()
        ax.set_title(f"stratum {cl['cluster']}")
        ax = axes[1]
        zs = (factors.loc[sid] - zref.mean()) / zref.std(ddof=1)
        ax.barh(list(zs.index)[::-1], zs.to_numpy()[::-1],
                color=["#d95f02" if abs(v) > 2 else "#7570b3" for v in zs.to_numpy()[::-1]])
        ax.axvline(0, color="black", lw=0.5)
        ax.set_xlabel("factor value (discovery SD units)")
        ax.set_title("factors")
        ax = axes[2]
        c = contributions[contributions["sample_id"] == sid].head(8)
        if len(c):
            ax.barh(list(c["variable"])[::-1], c["contribution"].to_numpy()[::-1],
                    color=["#1b9e77" if v > 0 else "#e7298a" for v in c["contribution"][::-1]])
            ax.axvline(0, color="black", lw=0.5)
            pos = [k[2:] for k in predictions.columns if k.startswith("p_")]
            if bundle.predictor.get("kind") in ("random_forest", "stacked"):  # occlusion
                ax.set_xlabel("change of the prediction when set to the discovery median")
            elif len(pos) > 2:
                ax.set_xlabel("contribution to the log-odds of the predicted class")
            else:
                ax.set_xlabel(f"contribution to the log-odds of {pos[-1]}" if pos
                              else "contribution to the predicted value")
        else:
            ax.set_axis_off()
        ax.set_title("top drivers of the prediction")
        fig.tight_layout()
        figure = svg(fig)

        p = predictions.set_index("sample_id").loc[sid]
        pcols = [k for k in p.index if k.startswith("p_")]
        pred_html = "<p>No predictive model in the bundle.</p>"
        if "predicted" in p.index:
            probs = ", ".join(f"{html.escape(k[2:])}: {p[k]:.2f}" for k in pcols)
            auc = cv.get("auc") or cv.get("r2")
            est = (f"; discovery nested-CV {'AUC' if 'auc' in cv else 'R2'} {auc['mean']:.2f} "
                   f"(95% CI {auc['ci_low']:.2f}-{auc['ci_high']:.2f})") if auc else ""
            pred_html = (f"<p><b>{html.escape(str(endpoint))}</b>: predicted "
                         f"<b>{html.escape(str(p['predicted']))}</b>"
                         + (f" (probabilities {probs})" if probs else "") + est + "</p>")
            n_miss, n_var = int(p.get("model_variables_missing", 0)), int(
                p.get("model_variables", 0))
            if n_miss:
                pred_html += (f"<p>{n_miss} of {n_var} model variables were not measured for "
                              "this patient and were imputed with discovery medians; they are "
                              "not listed as drivers.</p>")
            if n_var and n_miss > 0.5 * n_var:
                pred_html += ("<p class='warn'><b>Caution:</b> most of the model's variables "
                              "are imputed: this prediction rests mainly on discovery medians, "
                              "not on this patient's measurements.</p>")
        drv = drivers[drivers["sample_id"] == sid] if drivers is not None else pd.DataFrame()
        drv_html = ""
        if len(drv):
            cells = "".join(
                f"<tr><td>{html.escape(str(r['omic']))}</td><td>{html.escape(str(r['feature']))}"
                f"</td><td>{r['value_sd_units']:+.2f}</td><td>{r['share']:+.3f}</td></tr>"
                for _, r in drv.iterrows())
            direct = str(drv["factor"].iloc[0]) == "(direct)"
            head = "Measured variables behind the prediction" if direct else \
                f"Measurements behind {html.escape(str(drv['factor'].iloc[0]))}"
            what = "contribution to the prediction" if direct else \
                "evidence for the factor (w tau y)"
            drv_html = (f"<h2>{head}</h2><table><tr><th>omic</th><th>feature</th><th>value "
                        f"(discovery SD units)</th><th>{what}</th></tr>{cells}</table>")
        q = qc.set_index("sample_id").loc[sid]
        flags = [f for f in str(q["flags"]).split(";") if f]
        flags += [f"cohort drift: {r['level']} {r['name']}" for _, r in drift_warn.iterrows()]
        flag_html = "".join(f"<li>{html.escape(f)}</li>" for f in flags) or "<li>none</li>"
        body = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(sid)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}}
td,th{{padding:2px 8px;text-align:left}}</style></head><body>
<h1>Patient {html.escape(sid)}</h1>
<p>Cohort <b>{html.escape(cohort_name)}</b>, scored by the frozen model of
<b>{html.escape(str(bundle.manifest['discovery_cohort']))}</b>
({bundle.manifest['n_samples']} discovery patients). Nothing was refitted on this patient.</p>
<h2>Stratum</h2><p>Cluster <b>{html.escape(str(cl['cluster']))}</b>: {cl['agreement']:.0%} of the
{bundle.frozen['reference']['n_neighbors']} most similar discovery patients are in it.</p>
<h2>Prediction</h2>{pred_html}
{figure}
{drv_html}
<h2>Quality flags</h2><ul>{flag_html}</ul>
<p><a href="index.html">all patients</a></p></body></html>
"""
        path = out / f"{_safe(sid)}.html"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(body)
        pages.append(path)
    rows = "".join(
        f"<tr><td><a href=\"{_safe(s)}.html\">{html.escape(s)}</a></td>"
        f"<td>{html.escape(str(clusters.set_index('sample_id').loc[s, 'cluster']))}</td>"
        f"<td>{html.escape(str(predictions.set_index('sample_id').loc[s].get('predicted', '')))}"
        f"</td><td>{html.escape(str(qc.set_index('sample_id').loc[s, 'flags']) or 'none')}</td>"
        "</tr>" for s in factors.index)
    index = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(cohort_name)}</title></head><body>
<h1>{html.escape(cohort_name)}: {len(factors)} patients</h1>
<table><tr><th>patient</th><th>stratum</th><th>predicted</th><th>flags</th></tr>{rows}</table>
</body></html>
"""
    with atomic_path(out / "index.html") as tmp:
        Path(tmp).write_text(index)
    return pages


def _safe(sid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(sid))
