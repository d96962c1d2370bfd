"""Cross-validated prediction of an endpoint, without leakage, and explanations.

Nested cross-validation with scikit-learn: repeated stratified k-fold outside; inside each outer
training fold, MOFA+ is refitted on the training samples only and the held-out samples are
projected onto the frozen weights (:class:`FrozenMofa`); the regularisation strength is tuned by
an inner k-fold (GridSearchCV); imputation, scaling and the L1 feature selection of the
"features" model are fitted inside the pipeline.  Three models (factors, features, both) and a
prevalence baseline are compared; the best is refitted on all samples and explained.

Given the raw (ingested) tables, the per-omic normalisation is refitted inside every outer
training fold too (:class:`FoldData`): feature filtering, highly variable features, library-size
target, PQN reference and imputation values come from the training patients only, and the
held-out patients are transformed with them (:func:`omix.apply.transform_new`), exactly as a
new cohort would be.  Only ComBat batch correction stays outside (it cannot be transferred to
samples it did not see; the log says so when a batch column is set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .config import FromConfig
from .errors import AnalysisError
from .tl import MofaOptions, fit_mofa, view_matrix

log = logging.getLogger("omix.predict")

MODELS = ("factors", "features", "both")
BOUNDED = ("auc", "balanced_accuracy", "f1_macro")


@dataclass(frozen=True)
class PredictOptions(FromConfig):
    folds: int = 5
    repeats: int = 3
    inner_folds: int = 3
    seed: int = 0
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


@dataclass
class FrozenMofa:
    """What is needed to place new samples on a trained MOFA+ model, and nothing else."""

    views: list[str]
    features: dict[str, pd.Index]
    means: dict[str, np.ndarray]
    scales: dict[str, float]
    weights: dict[str, np.ndarray]        # D x K
    tau: dict[str, np.ndarray]            # D, noise precision per feature
    factors: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, mdata: Any, opts: MofaOptions) -> tuple[FrozenMofa, pd.DataFrame]:
        """Fit MOFA+ on ``mdata``; return the frozen model and the training factors."""
        ent = fit_mofa(mdata, opts)
        model = ent.model
        z = model.nodes["Z"].getExpectation()
        w_all = model.nodes["W"].getExpectation()
        tau = [np.asarray(t.Q.getExpectation())[0] if lik == "gaussian" else None
               for lik, t in zip(ent.likelihoods, model.nodes["Tau"].nodes, strict=True)]
        names = [f"Factor{k + 1}" for k in range(z.shape[1])]
        frozen = cls.from_parameters(mdata, list(ent.likelihoods), list(w_all), tau, names,
                                     scale_views=opts.scale_views)
        return frozen, pd.DataFrame(z, index=list(mdata.obs_names), columns=names)

    @classmethod
    def from_parameters(cls, mdata: Any, likelihoods: list[str], weights: list[np.ndarray],
                        tau: list[np.ndarray | None], factors: list[str], *,
                        scale_views: bool = True) -> FrozenMofa:
        """The frozen model from trained weights and noise precisions (one per view, in
        ``mdata.mod`` order); centring and scaling are mofapy2's, computed on ``mdata``."""
        out = cls(views=[], features={}, means={}, scales={}, weights={}, tau={},
                  factors=list(factors))
        for m, v in enumerate(mdata.mod):
            if likelihoods[m] != "gaussian":
                continue  # Bernoulli/Poisson views do not enter the projection
            x = view_matrix(mdata, v, list(mdata.obs_names))
            mean = np.nanmean(x, axis=0)
            scale = float(np.nanstd(x - mean)) if scale_views else 1.0
            out.views.append(v)
            out.features[v] = mdata.mod[v].var_names.copy()
            out.means[v] = mean
            out.scales[v] = scale if scale > 0 else 1.0
            out.weights[v] = np.asarray(weights[m])
            out.tau[v] = np.asarray(tau[m])
        return out

    def project(self, views: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Posterior mean of the factors of new samples given the frozen weights.

        z = (I + sum_m W_m' T_m W_m)^-1 sum_m W_m' T_m y_m over each sample's observed features,
        with y_m centred and scaled as in training; a feature absent from ``views`` is skipped.
        """
        samples = sorted(set().union(*(set(d.index) for d in views.values())), key=str)
        k = len(self.factors)
        prec = np.repeat(np.eye(k)[None, :, :], len(samples), axis=0)
        rhs = np.zeros((len(samples), k))
        pos = {s: i for i, s in enumerate(samples)}
        for v in self.views:
            if v not in views:
                continue
            d = views[v].reindex(columns=self.features[v])
            y = (d.to_numpy(dtype=float) - self.means[v]) / self.scales[v]
            obs = ~np.isnan(y)
            w, t = self.weights[v], self.tau[v]
            rows = [pos[s] for s in d.index]
            for i, r in enumerate(rows):
                o = obs[i]
                if not o.any():
                    continue
                wt = w[o] * t[o, None]
                prec[r] += w[o].T @ wt
                rhs[r] += wt.T @ y[i, o]
        z = np.stack([np.linalg.solve(prec[i], rhs[i]) for i in range(len(samples))])
        return pd.DataFrame(z, index=samples, columns=self.factors)


@dataclass
class FoldData:
    """What one outer fold trains and tests on.

    Without raw tables, slices of the cohort's normalised MuData.  With them, every omic is
    normalised again on the training patients only and the held-out patients are transformed
    with the training patients' parameters.
    """

    mdata: Any
    raw: dict[str, Any] | None = None          # omic -> ingested AnnData (all features)
    omic_cfg: dict[str, Any] | None = None     # omic -> its config section
    sheet: pd.DataFrame | None = None

    def split(self, tr: list[str], te: list[str]) -> tuple[Any, dict[str, pd.DataFrame]]:
        """(training MuData, held-out patients' normalised tables per omic)."""
        if self.raw is None:
            return self.mdata[tr].copy(), {
                v: pd.DataFrame(view_matrix(self.mdata, v, te), index=te,
                                columns=self.mdata.mod[v].var_names) for v in self.mdata.mod}
        from .apply import normalization_spec, transform_new
        from .pp import OmicOptions, normalize_omic
        from .tl import build_mudata

        assert self.omic_cfg is not None and self.sheet is not None
        mods, test = {}, {}
        for o, raw in self.raw.items():
            a = raw[[s for s in tr if s in raw.obs_names]].copy()
            mods[o] = normalize_omic(a, OmicOptions.from_config(dict(self.omic_cfg[o])))
            spec = normalization_spec(mods[o], self.omic_cfg[o])
            held = [s for s in te if s in raw.obs_names]
            x = pd.DataFrame(np.asarray(raw[held].X, dtype=float), index=held,
                             columns=raw.var_names)
            test[o] = transform_new(x, spec, name=o)[0].reindex(te)
        return build_mudata(mods, self.sheet), test


def _mofa_folds(samples: list[str], strata: np.ndarray, splitter: Any, fd: FoldData,
                mofa_opts: MofaOptions) -> Any:
    """The outer folds of both nested CVs: per fold (re)normalise on the training patients,
    fit MOFA+ there, project the held-out ones.  Yields (training positions, held-out
    positions, training MuData, held-out tables, training factors, held-out factors)."""
    for tr, te in splitter.split(np.zeros(len(samples)), strata):
        tr_s, te_s = [samples[j] for j in tr], [samples[j] for j in te]
        m_tr, held = fd.split(tr_s, te_s)
        frozen, z_tr = FrozenMofa.fit(m_tr, mofa_opts)
        z_te = frozen.project({v: held[v] for v in frozen.views}).reindex(te_s)
        yield tr, te, m_tr, held, z_tr.loc[tr_s], z_te


def feature_table(mdata: Any, samples: list[str]) -> pd.DataFrame:
    """All omics side by side, columns '<omic>:<feature>', NaN where a sample lacks the omic."""
    return pd.concat([pd.DataFrame(view_matrix(mdata, v, samples), index=samples,
                                   columns=[f"{v}:{f}" for f in mdata.mod[v].var_names])
                      for v in mdata.mod], axis=1)


def _estimator(kind: str, model: str, opts: PredictOptions, n_inner: int) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Lasso, LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "classification":
        # l1_ratio 1 = lasso (feature selection), 0 = ridge (factors); scikit-learn >= 1.8
        clf = LogisticRegression(l1_ratio=0.0 if model == "factors" else 1.0,
                                 solver="liblinear", max_iter=5000,
                                 class_weight="balanced", random_state=opts.seed)
        inner = StratifiedKFold(n_inner, shuffle=True, random_state=opts.seed)
        grid, scoring = {"est__C": list(opts.c_grid)}, "roc_auc_ovr"
    else:
        clf = Ridge() if model == "factors" else Lasso(max_iter=20000)
        inner = KFold(n_inner, shuffle=True, random_state=opts.seed)
        grid = {"est__alpha": [1.0 / c for c in opts.c_grid]}
        scoring = "r2"
    pipe = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                     ("scale", StandardScaler()), ("est", clf)])
    return GridSearchCV(pipe, grid, cv=inner, scoring=scoring, n_jobs=1)


def _metrics(kind: str, y_true: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
             classes: list[str]) -> dict[str, float]:
    from sklearn import metrics as m

    if kind == "regression":
        return {"r2": m.r2_score(y_true, pred), "mae": m.mean_absolute_error(y_true, pred)}
    if len(classes) == 2:
        auc = m.roc_auc_score(y_true == classes[1], proba[:, 1])
    else:
        auc = m.roc_auc_score(y_true, proba, multi_class="ovr", average="macro",
                              labels=classes)
    return {"auc": auc, "balanced_accuracy": m.balanced_accuracy_score(y_true, pred),
            "f1_macro": m.f1_score(y_true, pred, average="macro")}


def is_classification(y: pd.Series) -> bool:
    y = y.dropna()
    return not pd.api.types.is_numeric_dtype(y) or y.nunique() <= 10


def check_classes(y: pd.Series, folds: int, inner_folds: int) -> None:
    """Raise unless every class has enough samples for the outer and inner folds."""
    if not is_classification(y):
        return
    counts = y.dropna().astype(str).value_counts()
    if len(counts) < 2:
        raise AnalysisError(f"endpoint '{y.name}' has a single class",
                            hint="choose an endpoint with at least two classes")
    # every outer test fold needs each class once, every inner fold too
    need = max(folds, int(np.ceil(inner_folds * folds / (folds - 1))))
    if counts.min() < need:
        raise AnalysisError(
            f"endpoint '{y.name}': class '{counts.idxmin()}' has {int(counts.min())} samples; "
            f"{folds}-fold outer and {inner_folds}-fold inner cross-validation need at least "
            f"{need} per class", hint="lower predict.folds / predict.inner_folds or merge rare "
                                      "classes")


def nested_cv(mdata: Any, y: pd.Series, mofa_opts: MofaOptions, opts: PredictOptions,
              fold_data: FoldData | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Outer repeated k-fold; per fold (normalisation,) MOFA refit + projection, tuned models.

    Returns (per-fold metrics, out-of-fold predictions).
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    samples = [s for s in mdata.obs_names if pd.notna(y.get(s))]
    yy = y.loc[samples]
    kind = "classification" if is_classification(yy) else "regression"
    classes: list[str] = []
    if kind == "classification":
        yy = yy.astype(str)
        check_classes(yy, opts.folds, opts.inner_folds)  # on the samples that have data
        classes = sorted(yy.unique())
        splitter = RepeatedStratifiedKFold(n_splits=opts.folds, n_repeats=opts.repeats,
                                           random_state=opts.seed)
    else:
        splitter = RepeatedKFold(n_splits=opts.folds, n_repeats=opts.repeats,
                                 random_state=opts.seed)
    rows, preds = [], []
    y_arr = yy.to_numpy()
    folds = _mofa_folds(samples, y_arr, splitter, fold_data or FoldData(mdata), mofa_opts)
    for i, (tr, te, m_tr, held, z_tr, z_te) in enumerate(folds):
        rep, fold = divmod(i, opts.folds)
        tr_s, te_s = [samples[j] for j in tr], [samples[j] for j in te]
        f_tr = feature_table(m_tr, tr_s)
        f_te = pd.concat([held[v].add_prefix(f"{v}:") for v in m_tr.mod], axis=1
                         ).reindex(index=te_s, columns=f_tr.columns)
        blocks = {"factors": (z_tr.loc[tr_s], z_te.loc[te_s]), "features": (f_tr, f_te),
                  "both": (pd.concat([z_tr.loc[tr_s], f_tr], axis=1),
                           pd.concat([z_te.loc[te_s], f_te], axis=1))}
        for model in MODELS + ("baseline",):
            if model == "baseline":
                est = DummyClassifier(strategy="prior") if kind == "classification" \
                    else DummyRegressor()
                xtr, xte = np.zeros((len(tr), 1)), np.zeros((len(te), 1))
            else:
                est = _estimator(kind, model, opts, opts.inner_folds)
                xtr, xte = blocks[model][0].to_numpy(), blocks[model][1].to_numpy()
            est.fit(xtr, y_arr[tr])
            pred = est.predict(xte)
            proba = est.predict_proba(xte) if kind == "classification" else None
            rows.append({"model": model, "repeat": rep + 1, "fold": fold + 1,
                         **_metrics(kind, y_arr[te], pred, proba, classes)})
            for j, s in enumerate(te_s):
                rec = {"sample_id": s, "repeat": rep + 1, "fold": fold + 1, "model": model,
                       "observed": y_arr[te][j], "predicted": pred[j]}
                if proba is not None:
                    for c, cls in enumerate(classes):
                        rec[f"p_{cls}"] = proba[j, c]
                preds.append(rec)
        log.info("outer fold %d/%d done", i + 1, opts.folds * opts.repeats)
    return pd.DataFrame(rows), pd.DataFrame(preds)


def summarise(per_fold: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and a normal-approximation 95% CI across outer folds, per model and metric
    (clipped to [0, 1] for AUC, balanced accuracy and F1)."""
    out = []
    for model, d in per_fold.groupby("model", sort=False):
        for metric in [c for c in d.columns if c not in ("model", "repeat", "fold")]:
            v = d[metric].to_numpy(dtype=float)
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
            lo, hi = v.mean() - 1.96 * se, v.mean() + 1.96 * se
            if metric in BOUNDED:  # a normal-approximation interval can leave [0, 1]
                lo, hi = max(lo, 0.0), min(hi, 1.0)
            out.append({"model": model, "metric": metric, "mean": v.mean(),
                        "sd": v.std(ddof=1) if len(v) > 1 else np.nan,
                        "ci_low": lo, "ci_high": hi, "n_folds": len(v)})
    return pd.DataFrame(out)


def final_model(mdata: Any, y: pd.Series, factors: pd.DataFrame, model: str,
                opts: PredictOptions) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """Refit ``model`` on all samples; return it, coefficients and per-patient contributions.

    Contribution of a variable to a patient's score = coefficient x the patient's standardised
    value (log-odds scale for classification; the positive class is the last in sorted order).
    """
    samples = [s for s in mdata.obs_names if pd.notna(y.get(s))]
    yy = y.loc[samples]
    kind = "classification" if is_classification(yy) else "regression"
    if kind == "classification":
        yy = yy.astype(str)
    feats = feature_table(mdata, samples)
    x = {"factors": factors.loc[samples], "features": feats,
         "both": pd.concat([factors.loc[samples], feats], axis=1)}[model]
    est = _estimator(kind, model, opts, opts.inner_folds)
    est.fit(x.to_numpy(), yy.to_numpy())
    est.omix_columns = list(x.columns)  # the input columns, in order, for scoring new samples
    # wall-clock timings would make the saved model differ from run to run: drop them
    est.refit_time_ = 0.0
    for key in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"):
        est.cv_results_[key] = np.zeros_like(est.cv_results_[key])
    pipe = est.best_estimator_
    coef = np.atleast_2d(pipe.named_steps["est"].coef_)[-1]
    names = list(x.columns)
    imp = pd.DataFrame({"variable": names, "coefficient": coef, "abs": np.abs(coef)})
    imp = imp.sort_values(["abs", "variable"], ascending=[False, True], kind="mergesort")
    imp.insert(0, "rank", np.arange(1, len(imp) + 1))
    zx = pipe.named_steps["scale"].transform(pipe.named_steps["impute"].transform(x.to_numpy()))
    top = imp[imp["abs"] > 0].head(20)
    idx = [names.index(v) for v in top["variable"]]
    contrib = pd.DataFrame(zx[:, idx] * coef[idx], index=samples, columns=list(top["variable"]))
    contrib.insert(0, "intercept", float(np.atleast_1d(pipe.named_steps["est"].intercept_)[-1]))
    return est, imp.drop(columns="abs").reset_index(drop=True), contrib


# --------------------------------------------------------------------------------------------
# survival endpoint
# --------------------------------------------------------------------------------------------
PENALIZERS = (0.01, 0.1, 1.0, 10.0)


def _cox(z: pd.DataFrame, surv: pd.DataFrame, penalizer: float) -> Any:
    from lifelines import CoxPHFitter

    df = z.assign(_time=surv.loc[z.index, "time"].to_numpy(),
                  _event=surv.loc[z.index, "event"].to_numpy())
    return CoxPHFitter(penalizer=penalizer).fit(df, duration_col="_time", event_col="_event")


def _c_index(cph: Any, z: pd.DataFrame, surv: pd.DataFrame) -> float:
    from lifelines.utils import concordance_index

    risk = np.asarray(cph.predict_partial_hazard(z)).ravel()
    s = surv.loc[z.index]
    return float(concordance_index(s["time"], -risk, s["event"]))


def _tuned_cox(z: pd.DataFrame, surv: pd.DataFrame, opts: PredictOptions) -> tuple[Any, float]:
    """Cox model on standardised factors, ridge penalty chosen by inner-fold C-index."""
    from sklearn.model_selection import StratifiedKFold

    ev = surv.loc[z.index, "event"].to_numpy()
    inner = StratifiedKFold(opts.inner_folds, shuffle=True, random_state=opts.seed)
    best, best_c = PENALIZERS[0], -np.inf
    for p in PENALIZERS:
        cs = []
        for tr, te in inner.split(z, ev):
            cs.append(_c_index(_cox(z.iloc[tr], surv, p), z.iloc[te], surv))
        if np.mean(cs) > best_c + 1e-12:
            best, best_c = p, float(np.mean(cs))
    return _cox(z, surv, best), best


def nested_cv_survival(mdata: Any, surv: pd.DataFrame, mofa_opts: MofaOptions,
                       opts: PredictOptions, fold_data: FoldData | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold C-index of a Cox model on the MOFA+ factors, MOFA+ refitted per fold.

    Outer: repeated k-fold stratified on the event indicator; in each training part MOFA+ is
    refitted and the held-out patients projected (as in :func:`nested_cv`), the factors are
    standardised with the training part's mean and SD, and a ridge-penalised Cox model
    (lifelines) is fitted with its penalty chosen by inner-fold C-index.  The baseline is a
    model without covariates (C-index 0.5).  Returns (per-fold C-index, out-of-fold risks).
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    samples = [s for s in mdata.obs_names if s in surv.index]
    ev = surv.loc[samples, "event"].to_numpy()
    if ev.sum() < opts.folds or (len(ev) - ev.sum()) < opts.folds:
        raise AnalysisError(f"{int(ev.sum())} events among {len(ev)} patients: too few for "
                            f"{opts.folds}-fold cross-validation of survival",
                            hint="lower predict.folds or set predict.survival: false")
    splitter = RepeatedStratifiedKFold(n_splits=opts.folds, n_repeats=opts.repeats,
                                       random_state=opts.seed)
    rows, preds = [], []
    folds = _mofa_folds(samples, ev, splitter, fold_data or FoldData(mdata), mofa_opts)
    for i, (_, te, _, _, z_tr, z_te) in enumerate(folds):
        rep, fold = divmod(i, opts.folds)
        te_s = [samples[j] for j in te]
        mu, sd = z_tr.mean(), z_tr.std(ddof=1).replace(0, 1.0)
        z_tr, z_te = (z_tr - mu) / sd, (z_te - mu) / sd
        cph, pen = _tuned_cox(z_tr, surv, opts)
        c = _c_index(cph, z_te, surv)
        rows += [{"model": "factors", "repeat": rep + 1, "fold": fold + 1, "c_index": c},
                 {"model": "baseline", "repeat": rep + 1, "fold": fold + 1, "c_index": 0.5}]
        risk_tr = np.asarray(cph.predict_partial_hazard(z_tr)).ravel()
        risk_te = np.asarray(cph.predict_partial_hazard(z_te)).ravel()
        cut = float(np.median(risk_tr))   # risk groups by the training part's median
        for s, r in zip(te_s, risk_te, strict=True):
            preds.append({"sample_id": s, "repeat": rep + 1, "fold": fold + 1, "risk": r,
                          "risk_group": "high" if r > cut else "low", "penalizer": pen,
                          "time": surv.loc[s, "time"], "event": int(surv.loc[s, "event"])})
        log.info("survival outer fold %d/%d: C-index %.3f", i + 1, opts.folds * opts.repeats, c)
    return pd.DataFrame(rows), pd.DataFrame(preds)


def final_survival_model(z: pd.DataFrame, surv: pd.DataFrame, opts: PredictOptions
                         ) -> tuple[Any, pd.DataFrame]:
    """The Cox model on all patients' standardised factors: hazard ratio per SD with CIs."""
    z = z.loc[[s for s in z.index if s in surv.index]]
    zs = (z - z.mean()) / z.std(ddof=1).replace(0, 1.0)
    cph, pen = _tuned_cox(zs, surv, opts)
    s = cph.summary
    table = pd.DataFrame({"variable": s.index, "coefficient": s["coef"].to_numpy(),
                          "hazard_ratio_per_sd": s["exp(coef)"].to_numpy(),
                          "hr_ci_low": s["exp(coef) lower 95%"].to_numpy(),
                          "hr_ci_high": s["exp(coef) upper 95%"].to_numpy(),
                          "p": s["p"].to_numpy(), "penalizer": pen})
    return cph, table.sort_values("p", kind="mergesort").reset_index(drop=True)
