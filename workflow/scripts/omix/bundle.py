"""The frozen discovery bundle (``results/<cohort>/model/``): its format, writing and loading.

Scoring new patients with it is :mod:`omix.score`; their pages are :mod:`omix.pages`.

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
from .io import atomic_path, package_versions, pooled
from .io import floats_from_json as _array
from .io import json_floats as _floats
from .mofa import FrozenMofa, factor_table, read_mofa_model
from .pp import Normalizer
from .predict import CHOICE

log = logging.getLogger("omix.bundle")
PathLike = str | os.PathLike[str]

BUNDLE_FILES = ("manifest.json", "normalization.json", "frozen.json", "predictor.joblib")


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
            cv_metrics = pooled(cv_metrics)   # not leave_group_out's per-group rows
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
    return {"time_column": spec.time, "time_label": spec.axis_label, "curves": curves}


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
