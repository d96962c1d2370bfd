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
held-out patients are transformed with them (:meth:`omix.pp.Normalizer.transform`), exactly as a
new cohort would be.  Only ComBat batch correction stays outside (it cannot be transferred to
samples it did not see; the log says so when a batch column is set).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from .cox import RidgeCox, fit_ridge_cox
from .errors import AnalysisError, eta, progress
from .io import omic_features
from .mofa import FrozenMofa, MofaOptions, view_matrix
from .options import FromConfig
from .outcome import endpoint_kind, resolve
from .pp import Normalizer

log = logging.getLogger("omix.predict")

# candidates, each tuned inside the outer training part; the last two are the plain baselines
# a reviewer would run (L2 logistic / ridge on all standardised features, a random forest)
MODELS = ("factors", "features", "both", "stacked", "l2_features", "random_forest")
# candidates a user can add to predict.models; not run unless asked (see _elastic_net)
OPTIONAL_MODELS = ("elastic_net",)
CHOICE = "inner_cv_choice"    # per outer fold, the candidate with the best inner score
# the same choice refitted on two thirds of each outer training part: the slope of the
# learning curve that widens the procedure's interval upwards (see summarise)
SMALLER = "inner_cv_choice_two_thirds"
# survival: the tuned Cox model on the factors, refitted on two thirds the same way
SURV_SMALLER = "factors_two_thirds"
LEARNING_CURVES = {CHOICE: SMALLER, "factors": SURV_SMALLER}   # model: its two-thirds rows
ROLES = {"l2_features": "reference", "random_forest": "reference", CHOICE: "procedure",
         SMALLER: "learning_curve", SURV_SMALLER: "learning_curve", "baseline": "baseline"}
LOWER_IS_BETTER = ("mae",)
BOUNDED = ("auc", "balanced_accuracy", "f1_macro", "c_index")
FLOORED = ("auc", "balanced_accuracy", "f1_macro", "c_index")  # see summarise


@dataclass(frozen=True)
class PredictOptions(FromConfig):
    folds: int = 5
    repeats: int = 3
    inner_folds: int = 3
    seed: int = 0
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    models: tuple[str, ...] = MODELS
    rf_trees: int = 300
    l1_ratios: tuple[float, ...] = (0.2, 0.5, 0.8)
    endpoint_kind: str = "auto"  # classes / numbers: resolved once by the config
    cv: str = "kfold"             # or leave_group_out (see outer_splits)
    n_jobs: int = 1               # threads of the random forest (the rule's threads)


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
    seed: int = 0                              # the discovery normaliser's seed (min_prob)

    @classmethod
    def of_run(cls, mdata: Any, samples: str | os.PathLike[str],
               raw_h5ads: Mapping[str, Any] | None, omics_cfg: Any, batch: str | None
               ) -> FoldData:
        """The fold data of a run: per-fold renormalisation from the raw (ingested) tables
        ``raw_h5ads`` (omic -> path), unless there are none or ComBat is on (``batch``: it
        cannot be applied to held-out samples)."""
        from . import io

        if not raw_h5ads or omics_cfg is None:
            return cls(mdata)
        if batch:
            log.info("normalize.batch is set: normalisation is not refitted inside the folds "
                     "(ComBat cannot be applied to held-out samples); MOFA+ and the models "
                     "still are")
            return cls(mdata)
        log.info("normalisation, MOFA+ and the models are refitted inside every outer fold")
        seeds = {Normalizer.of(a).seed for a in mdata.mod.values()}
        return cls(mdata, raw={o: io.read_h5ad(p) for o, p in raw_h5ads.items()},
                   omic_cfg={o: dict(omics_cfg[o]) for o in raw_h5ads},
                   sheet=io.read_sample_sheet(samples), seed=min(seeds))

    def split(self, tr: list[str], te: list[str]) -> tuple[Any, dict[str, pd.DataFrame]]:
        """(training MuData, held-out patients' normalised tables per omic)."""
        if self.raw is None:
            return self.mdata[tr].copy(), {
                v: pd.DataFrame(view_matrix(self.mdata, v, te), index=te,
                                columns=omic_features(self.mdata, v)) for v in self.mdata.mod}
        from .pp import OmicOptions, normalize_omic
        from .tl import build_mudata

        assert self.omic_cfg is not None and self.sheet is not None
        mods, test = {}, {}
        for o, raw in self.raw.items():
            a = raw[[s for s in tr if s in raw.obs_names]].copy()
            mods[o] = normalize_omic(a, OmicOptions.from_config(dict(self.omic_cfg[o])),
                                     seed=self.seed)
            # MOFA+ and the models read X only: the raw and censored layers (as large as X
            # together, 190 MB a fold at 5,000 patients) are not kept for the fold
            mods[o].layers.clear()
            held = [s for s in te if s in raw.obs_names]
            x = pd.DataFrame(np.asarray(raw[held].X, dtype=float), index=held,
                             columns=raw.var_names)
            test[o] = Normalizer.of(mods[o]).transform(x, name=o).x.reindex(te)
        return build_mudata(mods, self.sheet), test


FoldTask = Callable[..., Any]


def unsupervised_part(tr_s: list[str], te_s: list[str], f_tr: pd.DataFrame,
                      held: dict[str, pd.DataFrame], z_tr: pd.DataFrame, z_te: pd.DataFrame,
                      n_jobs: int = 1) -> tuple[pd.DataFrame, dict[str, pd.DataFrame],
                                                pd.DataFrame, pd.DataFrame]:
    """The default task of :func:`_mofa_folds`: the fold's tables themselves."""
    return f_tr, held, z_tr, z_te


def _fit_fold(fd: FoldData, tr_s: list[str], te_s: list[str], mofa_opts: MofaOptions,
              log_file: str | None, parent: int, task: FoldTask, n_jobs: int) -> Any:
    """One outer fold, with one BLAS thread: (re)normalise on the training patients, fit
    MOFA+ there, project the held-out ones, then run ``task`` on (training ids, held-out ids,
    training feature table, held-out tables per omic, training factors, held-out factors) with
    ``n_jobs`` processes of its own.  In a worker process (pid other than ``parent``)
    mofapy2's chatter and the omix log go to the rule's log."""
    import contextlib

    from .errors import into_log

    worker = os.getpid() != parent and log_file is not None
    with into_log(log_file) if worker else contextlib.nullcontext(), _one_blas_thread():
        m_tr, held = fd.split(tr_s, te_s)
        frozen, z_tr = FrozenMofa.fit(m_tr, mofa_opts)
        z_te = frozen.project({v: held[v] for v in frozen.views}).reindex(te_s)
        return task(tr_s, te_s, feature_table(m_tr, tr_s), held, z_tr.loc[tr_s], z_te,
                    n_jobs=n_jobs)


# what forked fold workers read (see _mofa_folds): inherited at fork time, never pickled
_FORK_SHARED: dict[str, Any] = {}


def _fold_in_worker(ids: tuple[list[str], list[str]], mofa_opts: MofaOptions,
                    log_file: str | None, parent: int, task: FoldTask) -> Any:
    """One outer fold in a forked worker of :func:`_mofa_folds`, on the inherited tables."""
    try:
        return _fit_fold(_FORK_SHARED["fd"], ids[0], ids[1], mofa_opts, log_file, parent, task,
                         1)
    finally:
        release_freed_memory()


def release_freed_memory() -> None:
    """Hand the heap memory freed by a fold back to the system (glibc's ``malloc_trim``).

    A worker runs fold after fold; glibc keeps what a fold freed in its arenas, fragmented,
    so a worker's resident memory grew by about 600 MB per fold at 5,000 patients (1.3 GB
    after its first fold, 2.6 GB after its third) and peaked at 3.5 GB.  Elsewhere than
    glibc this does nothing."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _stop_workers(pool: Any) -> None:
    """Terminate a process pool's workers now, not after their current fold (minutes at
    scale): ``terminate_workers`` from Python 3.14, the pool's process table before."""
    stop = getattr(pool, "terminate_workers", None)
    if stop is not None:
        stop()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()


def _mofa_folds(samples: list[str], strata: np.ndarray, splitter: Any, fd: FoldData,
                mofa_opts: MofaOptions, n_jobs: int = 1,
                task: FoldTask = unsupervised_part) -> Any:
    """The outer folds of both nested CVs: per fold (re)normalise on the training patients,
    fit MOFA+ there, project the held-out ones and run ``task`` (the supervised part) on the
    result (:func:`_fit_fold`).  Yields (training positions, held-out positions, what
    ``task`` returned), in fold order.

    With ``n_jobs`` > 1 and the raw tables, up to ``n_jobs`` whole folds run at once in worker
    processes, one BLAS thread and one process each (``task`` gets ``n_jobs=1``): independent
    fits two at a time with one thread each ran 1.6-2.2x faster than one at a time with two
    (../shared/notes), and on small cohorts a fold's many small model fits gain nothing from a
    process pool of their own (bundled cohort, predict rule: 33 s with MOFA+ in workers and the
    candidates' grid search in two processes, 22 s with whole folds in workers).  Otherwise
    the folds run in turn and ``task`` gets the ``n_jobs``.  Results do not depend on
    ``n_jobs`` (tested).

    The workers are forked from this process (POSIX ``fork``), not started afresh as joblib's
    loky workers were: they inherit the imported libraries and the raw tables, where a loky
    worker imported numpy, scikit-learn and mofapy2 again (about 2 s before its first fold,
    on both cores, in each of the two rules) and received the raw tables pickled with every
    fold (400 MB per fold at 5,000 x 10,000).  Safe here: this
    process runs no OpenMP code before forking (GNU OpenMP does not survive a fork) and
    OpenBLAS shuts its threads down at a fork.  A worker that dies (killed for memory) stops
    the run with an error that says so: ``concurrent.futures`` notices it, where
    ``multiprocessing.Pool`` would wait for the lost fold for ever.  Where forking is not safe
    (macOS: its system libraries may hold threads, and Python starts processes afresh there
    by default) the folds go to loky workers as before (:data:`FORK_WORKERS`)."""
    splits = list(splitter.split(np.zeros(len(samples)), strata))
    ids = [([samples[j] for j in tr], [samples[j] for j in te]) for tr, te in splits]
    if n_jobs > 1 and fd.raw is not None and len(ids) > 1:
        run = _forked_folds if FORK_WORKERS else _loky_folds
        outs = run(ids, fd, mofa_opts, min(n_jobs, len(ids)), task)
    else:
        outs = (_fit_fold(fd, tr_s, te_s, mofa_opts, None, os.getpid(), task, n_jobs)
                for tr_s, te_s in ids)
    try:
        for (tr, te), out in zip(splits, outs, strict=True):
            yield tr, te, out
    finally:
        outs.close()   # a consumer that stopped early stops the workers too


# fork the fold workers (Linux); elsewhere start loky workers (see _mofa_folds)
FORK_WORKERS = sys.platform.startswith("linux")


def _forked_folds(ids: list[tuple[list[str], list[str]]], fd: FoldData, mofa_opts: MofaOptions,
                  n_jobs: int, task: FoldTask) -> Any:
    """What each fold's ``task`` returned, in fold order, from ``n_jobs`` forked workers."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from .errors import current_log_file

    _FORK_SHARED["fd"] = fd
    work = partial(_fold_in_worker, mofa_opts=mofa_opts, log_file=current_log_file(),
                   parent=os.getpid(), task=task)
    pool = ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("fork"))
    done = False
    try:
        with _one_blas_thread():  # what the workers start with: forked at the first submit
            futures = [pool.submit(work, i) for i in ids]
        for i, fut in enumerate(futures):
            try:
                out = fut.result()
            except BrokenProcessPool:
                raise AnalysisError(
                    f"outer fold {i + 1}/{len(ids)}: a worker process of the nested "
                    "cross-validation died (killed by the system, most often for lack of "
                    "memory)", hint="run fewer folds at once (snakemake --set-threads "
                    "predict=1 predict_survival=1) or give the job more memory") from None
            yield out
        done = True
    finally:
        _FORK_SHARED.clear()
        if not done:   # an error or a consumer that stopped: the other folds are not wanted
            _stop_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _loky_folds(ids: list[tuple[list[str], list[str]]], fd: FoldData, mofa_opts: MofaOptions,
                n_jobs: int, task: FoldTask) -> Any:
    """The same from joblib's loky workers, started afresh: each imports the libraries and
    receives the raw tables with every fold (a MuData cannot be pickled; the raw tables can)."""
    import warnings

    from joblib import Parallel, delayed

    from .errors import current_log_file

    light = FoldData(None, raw=fd.raw, omic_cfg=fd.omic_cfg, sheet=fd.sheet, seed=fd.seed)
    with _one_blas_thread():  # the environment joblib's workers start with
        results: Any = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_fit_fold)(light, tr_s, te_s, mofa_opts, current_log_file(), os.getpid(),
                               task, 1) for tr_s, te_s in ids)
    with warnings.catch_warnings():
        # loky replaces a worker whose resident memory grew by more than 300 MB over its
        # tasks (its leak heuristic; a fold at 1,000 x 10,000 allocates and frees more than
        # that and the allocator keeps some) and says so in a UserWarning; no task is lost
        # or repeated, the results are those of the serial run (tested)
        warnings.filterwarnings("ignore", message="A worker stopped while some jobs",
                                category=UserWarning)
        yield from results


def feature_table(mdata: Any, samples: list[str]) -> pd.DataFrame:
    """All omics side by side, columns '<omic>:<feature>', NaN where a sample lacks the omic."""
    return pd.concat([pd.DataFrame(view_matrix(mdata, v, samples), index=samples,
                                   columns=[str(f) for f in mdata.mod[v].var_names])
                      for v in mdata.mod], axis=1)


def _linear(kind: str, l1: bool, n_classes: int, seed: int) -> tuple[Any, str]:
    """A linear model and the name of its regularisation parameter in the grid.

    L1: :class:`omix.glm.L1Logistic` (balanced lasso logistic, one-vs-rest for three or more
    classes: one sparse model per class; multinomial saga is 10-100x slower at 10,000
    features), tuned along a warm-started path by :class:`omix.glm.L1LogisticCV`.  L2: two
    classes liblinear; three or more a multinomial lbfgs fit (liblinear no longer fits several
    classes in scikit-learn >= 1.8).  Numbers: ridge (L2) or lasso (L1).
    """
    from sklearn.linear_model import Lasso, LogisticRegression, Ridge

    from .glm import L1Logistic

    if kind == "regression":
        return (Lasso(max_iter=20000), "alpha") if l1 else (Ridge(), "alpha")
    if l1:
        return L1Logistic(), "C"
    if n_classes <= 2:
        return LogisticRegression(l1_ratio=0.0, solver="liblinear", max_iter=5000,
                                  class_weight="balanced", random_state=seed), "C"
    return LogisticRegression(l1_ratio=0.0, solver="lbfgs", max_iter=5000,
                              class_weight="balanced", random_state=seed), "C"


def _elastic_net(kind: str, seed: int) -> Any:
    """Elastic net: logistic regression with mixed L1/L2 penalty (saga; multinomial for three
    or more classes) or ElasticNet for numbers; C and l1_ratio are tuned together.

    Optional (``predict.models``), not a default candidate, because of its cost, measured on
    this 2-core machine (800 x 6,000 standardised features, binary): one saga fit takes
    3-27 s depending on C, 10-70x liblinear's L1 fit (0.4 s), so 3 inner folds x 4 C x 3
    ratios add minutes per outer fold; glum's elastic-net path with CV took 400 s and
    SGDClassifier 65 s on the same grid.  The L1 (features) and L2 (l2_features) candidates
    are the two ends of the same path and cost seconds.
    """
    from sklearn.linear_model import ElasticNet, LogisticRegression

    if kind == "regression":
        return ElasticNet(max_iter=20000)
    return LogisticRegression(solver="saga", l1_ratio=0.5, max_iter=5000, tol=1e-3,
                              class_weight="balanced", random_state=seed)


def estimator(kind: str, model: str, opts: PredictOptions, n_inner: int,
               n_classes: int = 2, columns: list[str] | None = None) -> Any:
    """The tuned estimator of one candidate model: median imputation, scaling and the model
    in one pipeline, so every statistic is fitted on the training part only.

    Linear models tune their regularisation by an inner k-fold (GridSearchCV); the random
    forest is not tuned (its defaults are robust) and is judged by its out-of-bag score."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .impute import MedianImputer

    impute = MedianImputer()
    if model == "random_forest":
        rf = (RandomForestClassifier(n_estimators=opts.rf_trees, class_weight="balanced",
                                     oob_score=True, random_state=opts.seed, n_jobs=opts.n_jobs)
              if kind == "classification" else
              RandomForestRegressor(n_estimators=opts.rf_trees, oob_score=True,
                                    random_state=opts.seed, n_jobs=opts.n_jobs))
        return Pipeline([("impute", impute), ("est", rf)])
    if model == "stacked":
        from .stack import OmicStack

        assert columns is not None, "the stacked model groups its columns by omic"
        return Pipeline([("impute", impute), ("est", OmicStack(
            columns, kind, opts.c_grid, n_inner=n_inner, seed=opts.seed, n_jobs=opts.n_jobs))])
    if model == "elastic_net":
        est, param = _elastic_net(kind, opts.seed), ("C" if kind == "classification"
                                                      else "alpha")
    else:
        est, param = _linear(kind, l1=model in ("features", "both"), n_classes=n_classes,
                             seed=opts.seed)
    if kind == "classification":
        inner: Any = StratifiedKFold(n_inner, shuffle=True, random_state=opts.seed)
        grid, scoring = {f"est__{param}": list(opts.c_grid)}, "roc_auc_ovr"
    else:
        inner = KFold(n_inner, shuffle=True, random_state=opts.seed)
        grid, scoring = {f"est__{param}": [1.0 / c for c in opts.c_grid]}, "r2"
    if model == "elastic_net":
        grid["est__l1_ratio"] = list(opts.l1_ratios)
    pipe = Pipeline([("impute", impute), ("scale", StandardScaler()), ("est", est)])
    if kind == "classification" and model in ("features", "both"):
        from .glm import L1LogisticCV

        # the grid search of one warm-started path per inner fold (see L1LogisticCV)
        return L1LogisticCV(pipe, list(opts.c_grid), inner, scoring, n_jobs=opts.n_jobs)
    # the inner folds x grid fits run in opts.n_jobs processes (see _one_blas_thread)
    return GridSearchCV(pipe, grid, cv=inner, scoring=scoring, n_jobs=opts.n_jobs)


def inner_score(est: Any, kind: str, y: np.ndarray) -> float:
    """How a fitted candidate scored on data its fit did not use: the inner-CV score of the
    tuned linear models, the out-of-bag score (AUC or R2) of the forest."""
    from sklearn import metrics as m

    if hasattr(est, "best_score_"):
        return float(est.best_score_)
    rf = est.named_steps["est"]
    if hasattr(rf, "inner_score_"):
        return float(rf.inner_score_)
    if kind == "regression":
        return float(rf.oob_score_)
    oob = np.nan_to_num(rf.oob_decision_function_, nan=1.0 / len(rf.classes_))
    if len(rf.classes_) == 2:
        return float(m.roc_auc_score(y == rf.classes_[1], oob[:, 1]))
    oob = oob / oob.sum(axis=1, keepdims=True).clip(min=1e-12)
    return float(m.roc_auc_score(y, oob, multi_class="ovr", average="macro",
                                 labels=list(rf.classes_)))


def _metrics(kind: str, y_true: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
             classes: list[str]) -> dict[str, float]:
    """AUC (one-vs-rest, macro over classes for three or more), balanced accuracy, macro F1;
    R2 and MAE for numbers.  A class absent from ``y_true`` is left out of the macro AUC."""
    from sklearn import metrics as m

    if kind == "regression":
        return {"r2": m.r2_score(y_true, pred), "mae": m.mean_absolute_error(y_true, pred)}
    assert proba is not None
    if len(classes) == 2:
        pos = y_true == classes[1]
        # a held-out group (leave_group_out) may hold one class only: no AUC there
        auc = m.roc_auc_score(pos, proba[:, 1]) if 0 < pos.sum() < len(pos) else np.nan
    else:
        present = [j for j, c in enumerate(classes) if 0 < np.sum(y_true == c) < len(y_true)]
        auc = float(np.mean([m.roc_auc_score(y_true == classes[j], proba[:, j])
                             for j in present])) if present else np.nan
    return {"auc": auc, "balanced_accuracy": m.balanced_accuracy_score(y_true, pred),
            "f1_macro": m.f1_score(y_true, pred, average="macro", labels=classes,
                                   zero_division=0.0)}


def per_class_metrics(preds: pd.DataFrame, model: str) -> pd.DataFrame:
    """Per class, from the out-of-fold predictions of ``model`` (all repeats pooled):
    one-vs-rest AUC, sensitivity (recall), precision and the number of patients."""
    from sklearn import metrics as m

    d = preds[preds["model"] == model]
    classes = [c[2:] for c in d.columns if c.startswith("p_")]
    obs, pred = d["observed"].astype(str).to_numpy(), d["predicted"].astype(str).to_numpy()
    rows = []
    for c in classes:
        truth = obs == c
        rows.append({"model": model, "class": c, "n": int(truth.sum()) // max(
            int(d["repeat"].nunique()), 1),
            "auc_one_vs_rest": m.roc_auc_score(truth, d[f"p_{c}"].to_numpy(dtype=float))
            if 0 < truth.sum() < len(truth) else np.nan,
            "sensitivity": float(np.mean(pred[truth] == c)) if truth.any() else np.nan,
            "precision": float(np.mean(obs[pred == c] == c)) if (pred == c).any() else np.nan})
    return pd.DataFrame(rows)


def check_classes(y: pd.Series, folds: int, inner_folds: int, kind: str = "auto") -> None:
    """Raise unless every class has enough samples for the outer and inner folds."""
    if resolve(kind, y) != "classes":
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


def _one_blas_thread() -> Any:
    """A context in which BLAS uses one thread, here and in joblib's worker processes.

    The candidates are many small fits (lbfgs and liblinear on a few hundred patients): with
    two BLAS threads each fit ran slower, not faster (OpenBLAS's thread hand-off costs more
    than it saves on these shapes; one outer fold of the 1,000-patient scale cohort: stacked
    23.8 s -> 4.9 s, l2_features 8.3 s -> 5.3 s with one thread).  The rule's threads go to
    the grid search's parallel fits and the forest's trees instead.  The workers need saying
    so: Snakemake sets OPENBLAS_NUM_THREADS to the rule's threads and joblib passes it on, so
    two workers ran two BLAS threads each on two cores (a whole-workflow run: 73 s per outer
    fold instead of 32 s)."""
    import contextlib
    from unittest import mock

    from threadpoolctl import threadpool_limits

    stack = contextlib.ExitStack()
    stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
    # what joblib hands to the worker processes it starts (it reads os.environ)
    one = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                            "NUMEXPR_NUM_THREADS")}
    stack.enter_context(mock.patch.dict(os.environ, one))
    return stack


def _fit_predict(est: Any, kind: str, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    est.fit(xtr, ytr)
    return est.predict(xte), (est.predict_proba(xte) if kind == "classification" else None)


def _two_thirds(kind: str, model: str, block: tuple[pd.DataFrame, pd.DataFrame],
                y_tr: np.ndarray, n_classes: int, opts: PredictOptions
                ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``model`` refitted on a (stratified) two thirds of the training part, predicting the
    same held-out part: one point lower on the learning curve (see :func:`summarise`).  None
    where two thirds are too few for the inner folds (a rare class)."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    split = (StratifiedShuffleSplit if kind == "classification" else ShuffleSplit)(
        1, train_size=2 / 3, random_state=opts.seed)
    sub = next(split.split(np.zeros(len(y_tr)), y_tr))[0]
    xtr, xte = block
    est = estimator(kind, model, opts, opts.inner_folds, n_classes, list(xtr.columns))
    try:
        with _one_blas_thread():
            return _fit_predict(est, kind, xtr.to_numpy()[sub], y_tr[sub], xte.to_numpy())
    except ValueError:   # scikit-learn: too few members of a class for the inner folds
        return None


def fit_candidates(kind: str, models: list[str],
                   blocks: dict[str, tuple[pd.DataFrame, pd.DataFrame]], y_tr: np.ndarray,
                   n_classes: int, opts: PredictOptions
                   ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray | None]], str]:
    """One outer fold: fit every candidate on its training block, predict the held-out block;
    add the inner-CV choice, the same choice refitted on two thirds of the training block
    (:data:`SMALLER`) and the prevalence baseline.  Returns ({model: (predicted,
    probabilities)}, the candidate the inner CV chose)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    scores: dict[str, float] = {}
    for model in models:
        xtr, xte = blocks[model]
        est = estimator(kind, model, opts, opts.inner_folds, n_classes, list(xtr.columns))
        with _one_blas_thread():
            out[model] = _fit_predict(est, kind, xtr.to_numpy(), y_tr, xte.to_numpy())
        scores[model] = inner_score(est, kind, y_tr)
    best = max(models, key=lambda mdl: (scores[mdl], -models.index(mdl)))
    out[CHOICE] = out[best]
    smaller = _two_thirds(kind, best, blocks[best], y_tr, n_classes, opts)
    if smaller is not None:
        out[SMALLER] = smaller
    n_te = len(next(iter(blocks.values()))[1])
    base = DummyClassifier(strategy="prior") if kind == "classification" else DummyRegressor()
    out["baseline"] = _fit_predict(base, kind, np.zeros((len(y_tr), 1)), y_tr,
                                   np.zeros((n_te, 1)))
    return out, best


class _LeaveGroupOut:
    """scikit-learn's LeaveOneGroupOut with the groups bound, so it splits like the k-fold
    splitters (``split(x, y)``), groups in sorted order."""

    def __init__(self, groups: np.ndarray) -> None:
        self.groups = groups

    def split(self, x: Any, y: Any = None) -> Any:
        from sklearn.model_selection import LeaveOneGroupOut

        return LeaveOneGroupOut().split(x, y, self.groups)


def outer_splits(samples: list[str], strata: np.ndarray, opts: PredictOptions,
                 groups: pd.Series | None, stratify: bool = True
                 ) -> tuple[Any, int, list[str] | None]:
    """The outer cross-validation: (splitter, folds per repeat, each fold's held-out group or
    None).  ``kfold``: repeated k-fold, stratified on ``strata`` if ``stratify``;
    ``leave_group_out``: one fold per group of ``groups`` (every patient must have one)."""
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    if opts.cv == "leave_group_out":
        if groups is None:
            raise AnalysisError("predict.cv is leave_group_out but no groups column is set",
                                hint="set groups: to the sample-sheet column naming each "
                                     "patient's site")
        g = groups.reindex(samples)
        if g.isna().any():
            raise AnalysisError(f"{int(g.isna().sum())} of {len(g)} patients have no value in "
                                f"the groups column '{groups.name}'",
                                hint="fill in every patient's group, or use predict.cv: kfold")
        g = g.astype(str).to_numpy()
        names = sorted(set(g))
        if len(names) < 2:
            raise AnalysisError(f"the groups column '{groups.name}' has one group ({names[0]}): "
                                "nothing to hold out", hint="use predict.cv: kfold")
        if stratify:   # each training part (all groups but one) needs every class
            for name in names:
                counts = pd.Series(strata[g != name]).astype(str).value_counts()
                few = counts[counts < opts.inner_folds]
                missing = sorted(set(map(str, strata)) - set(counts.index))
                if missing or len(few):
                    what = (f"no patient of class '{missing[0]}'" if missing else
                            f"{int(few.iloc[0])} of class '{few.index[0]}'")
                    raise AnalysisError(
                        f"without group '{name}' of '{groups.name}' the training patients "
                        f"have {what}: too few for {opts.inner_folds}-fold inner "
                        "cross-validation", hint="merge small groups or use predict.cv: kfold")
        return _LeaveGroupOut(g), len(names), names
    cls = RepeatedStratifiedKFold if stratify else RepeatedKFold
    return cls(n_splits=opts.folds, n_repeats=opts.repeats, random_state=opts.seed), \
        opts.folds, None


def metric_columns(per_fold: pd.DataFrame) -> list[str]:
    """The metric columns of a per-fold table (not its keys and labels)."""
    return [c for c in per_fold.columns if c not in ("model", "repeat", "fold", "chosen",
                                                      "group")]


def per_group_rows(per_fold: pd.DataFrame, n_min: dict[str, int | None]) -> pd.DataFrame:
    """metrics.tsv rows of leave_group_out: per model, metric and held-out group, that fold's
    value; for AUC, balanced accuracy, macro F1 and the C-index the Wilson interval over the
    group's smallest class (``n_min``, as in :func:`summarise`), else no interval."""
    out = []
    metrics = metric_columns(per_fold)
    for _, r in per_fold.iterrows():
        for metric in metrics:
            v = float(r[metric])
            lo = hi = np.nan
            n = n_min.get(str(r["group"]))
            if n and metric in FLOORED and r["model"] != "baseline" and np.isfinite(v):
                lo, hi = wilson(float(np.clip(v, 0, 1)), n)
            out.append({"model": r["model"], "role": ROLES.get(str(r["model"]), "candidate"),
                        "metric": metric, "mean": v, "sd": np.nan, "ci_low": lo,
                        "ci_high": hi, "n_folds": int(np.isfinite(v)),
                        "learning_gain": np.nan, "group": str(r["group"])})
    return pd.DataFrame(out)


def nested_cv_matrix(x: pd.DataFrame, y: pd.Series, opts: PredictOptions) -> pd.DataFrame:
    """The nested CV of :func:`nested_cv` on a plain feature table (no MOFA+ refit): the
    feature candidates and the inner-CV choice among them.  Used by the coverage study
    (:mod:`omix.coverage`).  Returns the per-fold metrics."""
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    kind = endpoint_kind(y, opts.endpoint_kind)
    yv = y.astype(str).to_numpy() if kind == "classification" else y.to_numpy(dtype=float)
    classes = sorted(set(yv)) if kind == "classification" else []
    splitter: Any = (RepeatedStratifiedKFold if kind == "classification" else RepeatedKFold)(
        n_splits=opts.folds, n_repeats=opts.repeats, random_state=opts.seed)
    models = [m for m in opts.models if m in ("features", "stacked", "l2_features",
                                              "random_forest", "elastic_net")]
    rows = []
    for i, (tr, te) in enumerate(splitter.split(x, yv)):
        b = (x.iloc[tr], x.iloc[te])
        out, best = fit_candidates(kind, models, {m: b for m in models}, yv[tr], len(classes),
                                   opts)
        rep, fold = divmod(i, opts.folds)
        for model, (pred, proba) in out.items():
            rows.append({"model": model, "repeat": rep + 1, "fold": fold + 1,
                         **_metrics(kind, yv[te], pred, proba, classes),
                         "chosen": best if model == CHOICE else ""})
    return pd.DataFrame(rows)


def candidate_blocks(tr_s: list[str], te_s: list[str], f_tr: pd.DataFrame,
                     held: dict[str, pd.DataFrame], z_tr: pd.DataFrame, z_te: pd.DataFrame
                     ) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Each candidate of :data:`MODELS` with its (training, held-out) tables for one outer
    fold: the factors, the features (the held-out omics' tables in the training table's
    columns) or both side by side."""
    f_te = pd.concat([held[v].add_prefix(f"{v}:") for v in held], axis=1
                     ).reindex(index=te_s, columns=f_tr.columns)
    blocks = {"factors": (z_tr.loc[tr_s], z_te.loc[te_s]), "features": (f_tr, f_te),
              "both": (pd.concat([z_tr.loc[tr_s], f_tr], axis=1),
                       pd.concat([z_te.loc[te_s], f_te], axis=1))}
    for m in ("l2_features", "random_forest", "stacked", "elastic_net"):
        blocks[m] = blocks["features"]
    return blocks


def _candidates_task(tr_s: list[str], te_s: list[str], f_tr: pd.DataFrame,
                     held: dict[str, pd.DataFrame], z_tr: pd.DataFrame, z_te: pd.DataFrame,
                     n_jobs: int = 1, *, y: pd.Series, kind: str, models: list[str],
                     n_classes: int, opts: PredictOptions
                     ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray | None]], str]:
    """The supervised part of one outer fold of :func:`nested_cv` (a :func:`_mofa_folds`
    task): every candidate on its block of the fold's tables (:func:`fit_candidates`)."""
    blocks = candidate_blocks(tr_s, te_s, f_tr, held, z_tr, z_te)
    return fit_candidates(kind, models, {m: blocks[m] for m in models},
                          y.loc[tr_s].to_numpy(), n_classes, replace(opts, n_jobs=n_jobs))


def nested_cv(mdata: Any, y: pd.Series, mofa_opts: MofaOptions, opts: PredictOptions,
              fold_data: FoldData | None = None, groups: pd.Series | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Outer repeated k-fold; per fold (normalisation,) MOFA refit + projection, tuned models.

    Every candidate of :data:`MODELS` is fitted on the outer training part; the row
    ``inner_cv_choice`` is, in each outer fold, the candidate whose inner score
    (:func:`inner_score`, computed on the training part only) was best: its outer metrics
    estimate the whole procedure, model choice included, without the winner's curse of picking
    the best mean over the same outer folds.

    With ``opts.cv`` leave_group_out, each group of ``groups`` is held out in turn (one
    repeat; the per-fold rows and predictions carry the held-out ``group``).

    Returns (per-fold metrics, out-of-fold predictions).
    """
    samples = [s for s in mdata.obs_names if pd.notna(y.get(s))]
    yy = y.loc[samples]
    kind = endpoint_kind(yy, opts.endpoint_kind)
    classes: list[str] = []
    if kind == "classification":
        yy = yy.astype(str)
        check_classes(yy, opts.folds, opts.inner_folds, opts.endpoint_kind)  # with data
        classes = sorted(yy.unique())
    models = list(opts.models)
    rows, preds = [], []
    y_arr = yy.to_numpy()
    splitter, per_repeat, names = outer_splits(samples, y_arr, opts, groups,
                                               stratify=kind == "classification")
    n_outer = per_repeat * (1 if names else opts.repeats)
    t0 = time.monotonic()
    task = partial(_candidates_task, y=pd.Series(y_arr, index=samples), kind=kind,
                   models=models, n_classes=len(classes), opts=opts)
    folds = _mofa_folds(samples, y_arr, splitter, fold_data or FoldData(mdata), mofa_opts,
                        opts.n_jobs, task)
    for i, (_, te, (out, best)) in enumerate(folds):
        rep, fold = divmod(i, per_repeat)
        te_s = [samples[j] for j in te]
        where = {"group": names[i]} if names else {}
        for model, (pred, proba) in out.items():
            rows.append({"model": model, "repeat": rep + 1, "fold": fold + 1,
                         **_metrics(kind, y_arr[te], pred, proba, classes),
                         "chosen": best if model == CHOICE else "", **where})
            if model == SMALLER:   # a learning-curve point, not a prediction anyone gets
                continue
            for j, s in enumerate(te_s):
                rec = {"sample_id": s, "repeat": rep + 1, "fold": fold + 1, "model": model,
                       "observed": y_arr[te][j], "predicted": pred[j], **where}
                if proba is not None:
                    for c, cls in enumerate(classes):
                        rec[f"p_{cls}"] = proba[j, c]
                preds.append(rec)
        left = (time.monotonic() - t0) / (i + 1) * (n_outer - i - 1)
        progress(log, "predict: outer fold %d/%d done (inner choice: %s), %s left", i + 1,
                 n_outer, best, eta(left))
    return pd.DataFrame(rows), pd.DataFrame(preds)


def wilson(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` patients."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def summarise(per_fold: pd.DataFrame, folds: int | None = None, n_min: int | None = None
              ) -> pd.DataFrame:
    """Mean, SD and a 95% interval across outer folds, per model and metric.

    The outer folds of repeated k-fold share most of their training patients, so their scores
    are correlated and the naive standard error (SD / sqrt(J)) is far too small.  The interval is
    the corrected resampled t of Nadeau & Bengio (2003): variance (1/J + n_test/n_train) * SD^2
    with J - 1 degrees of freedom, n_test/n_train = 1/(folds - 1).

    That interval rests on the spread between folds and collapses when every fold scores the
    same (all AUCs 1.0).  For AUC, balanced accuracy, macro F1 and the C-index, given ``n_min``
    (the smallest class, or the smaller of events and non-events), it is widened to contain the
    Wilson score interval of the mean over ``n_min`` patients: by Birnbaum & Klose (1957) the
    variance of an AUC estimate is at most A(1 - A) / min(n_pos, n_neg), so no interval should be
    narrower, whatever the folds say.

    Both describe models trained on (k - 1) / k of the patients, while the model a user gets is
    refitted on all of them: on a steep learning curve it does better than the folds say (a
    coverage study at 120 patients: the held-out AUC above the interval in 14 % of replicates,
    below it in 1 %).  So the procedure's interval is widened upwards by the gain a
    log-linear learning curve predicts from k/(k-1) n to n, estimated in the same folds: the
    inner-CV choice refitted on two thirds of each training part (the :data:`SMALLER` rows)
    against the full training part, gain = log(k / (k - 1)) / log(3 / 2) x mean paired
    difference (0.55 x for 5 folds), only where the full part did better (for MAE: the lower
    end moves down).  Survival's Cox model on the factors gets the same from its
    :data:`SURV_SMALLER` rows.  ``learning_gain`` holds that gain.  Bounded metrics are clipped to
    [0, 1].
    """
    from scipy import stats

    k = folds if folds is not None else int(per_fold["fold"].max())
    ratio = 1.0 / (k - 1)
    gains = {full: learning_gains(per_fold, k, full, small)
             for full, small in LEARNING_CURVES.items()}
    out = []
    for model, d in per_fold.groupby("model", sort=False):
        for metric in metric_columns(d):
            v = d[metric].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            j = len(v)
            sd = v.std(ddof=1) if j > 1 else np.nan
            half = stats.t.ppf(0.975, j - 1) * np.sqrt((1.0 / j + ratio) * sd**2) \
                if j > 1 else np.nan
            lo, hi = v.mean() - half, v.mean() + half
            if n_min and metric in FLOORED and model != "baseline" and j:
                w_lo, w_hi = wilson(float(np.clip(v.mean(), 0, 1)), n_min)
                lo, hi = min(lo, w_lo), max(hi, w_hi)
            gain = gains.get(str(model), {}).get(metric, np.nan)
            if np.isfinite(gain):
                if metric in LOWER_IS_BETTER:
                    lo = lo + min(gain, 0.0)
                else:
                    hi = hi + max(gain, 0.0)
            if metric in BOUNDED:  # a t interval can leave [0, 1]
                lo, hi = max(lo, 0.0), min(hi, 1.0)
            out.append({"model": model, "role": ROLES.get(str(model), "candidate"),
                        "metric": metric, "mean": v.mean(), "sd": sd, "ci_low": lo,
                        "ci_high": hi, "n_folds": j, "learning_gain": gain})
    return pd.DataFrame(out)


def learning_gains(per_fold: pd.DataFrame, folds: int, full_model: str = CHOICE,
                   small_model: str = SMALLER) -> dict[str, float]:
    """Per metric, the gain of ``full_model`` (the inner-CV choice; for survival the Cox model
    on the factors) from (k-1)/k n to n patients that a log-linear learning curve through its
    two-thirds refit (``small_model`` rows) predicts (see :func:`summarise`); empty without
    those rows."""
    key = ["repeat", "fold"]
    full = per_fold[per_fold["model"] == full_model].set_index(key)
    small = per_fold[per_fold["model"] == small_model].set_index(key)
    if small.empty:
        return {}
    both = full.index.intersection(small.index)
    factor = np.log(folds / (folds - 1)) / np.log(3 / 2)
    out = {}
    for metric in metric_columns(per_fold):
        d = (full.loc[both, metric].astype(float) - small.loc[both, metric].astype(float))
        d = d[np.isfinite(d)]
        if len(d):
            out[metric] = float(factor * d.mean())
    return out


def smallest_class(y: pd.Series, kind: str = "auto") -> int | None:
    """Patients in the smallest class of a class endpoint (None for numbers)."""
    y = y.dropna()
    return int(y.astype(str).value_counts().min()) if resolve(kind, y) == "classes" else None


def choose_final(summary: pd.DataFrame) -> str:
    """The candidate refitted on all patients: the best mean outer score (the same rule the
    inner choice applies inside each training part).  Its honest estimate is the
    ``inner_cv_choice`` row, not its own row."""
    key = "auc" if (summary["metric"] == "auc").any() else "r2"
    cand = summary[(summary["metric"] == key) & summary["model"].isin(MODELS)]
    return str(cand.sort_values(["mean", "model"], ascending=[False, True])["model"].iloc[0])


def _pipeline(est: Any) -> Any:
    return getattr(est, "best_estimator_", est)


def linear_coefficients(est: Any) -> np.ndarray | None:
    """Coefficients as (classes or 1) x variables, on the standardised scale; None for a
    forest.  Two classes and numbers: one row (the positive class is the last in sorted
    order); three or more: one row per class."""
    m = _pipeline(est).named_steps["est"]
    if hasattr(m, "estimators_") and not hasattr(m, "feature_importances_"):  # one-vs-rest
        return np.vstack([np.atleast_2d(e.coef_) for e in m.estimators_])
    if hasattr(m, "coef_"):
        return np.atleast_2d(m.coef_)
    return None


def intercepts(est: Any) -> np.ndarray:
    """Intercepts, one per row of :func:`linear_coefficients`."""
    m = _pipeline(est).named_steps["est"]
    if hasattr(m, "estimators_"):
        return np.array([float(np.atleast_1d(e.intercept_)[0]) for e in m.estimators_])
    return np.atleast_1d(np.asarray(m.intercept_, dtype=float))


def contributions(est: Any, x: np.ndarray, top: list[int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per patient and variable, its contribution to the patient's score, and the class (row
    of the coefficients) explained.

    Linear models: coefficient x standardised value, in the log-odds (or value) of the
    predicted class, which for a linear model are exactly its interventional SHAP values.
    Forest: occlusion, the drop in the predicted class's probability (or the prediction) when
    the variable is set to its training median, for the ``top`` variables (others 0).
    """
    pipe = _pipeline(est)
    coef = linear_coefficients(est)
    xi = pipe.named_steps["impute"].transform(x)
    if coef is not None:
        zx = pipe.named_steps["scale"].transform(xi)
        if coef.shape[0] == 1:  # two classes: the log-odds of the last; numbers: the value
            return zx * coef[0], np.full(len(x), len(getattr(pipe, "classes_", [])) - 1)
        cls = np.searchsorted(pipe.classes_, pipe.predict(x))
        return zx * coef[cls], cls
    rf = pipe.named_steps["est"]
    out = np.zeros_like(xi)
    classifier = hasattr(rf, "classes_")
    cls = np.searchsorted(rf.classes_, rf.predict(xi)) if classifier else np.full(len(x), -1)

    def score(a: np.ndarray) -> np.ndarray:
        if classifier:
            return rf.predict_proba(a)[np.arange(len(a)), cls]
        return rf.predict(a)

    base = score(xi)
    fill = pipe.named_steps["impute"].statistics_
    for j in (top if top is not None else range(xi.shape[1])):
        a = xi.copy()
        a[:, j] = fill[j]
        out[:, j] = base - score(a)
    return out, cls


def final_model(mdata: Any, y: pd.Series, factors: pd.DataFrame, model: str,
                opts: PredictOptions) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """Refit ``model`` on all samples; return it, its variable importance and per-patient
    contributions (:func:`contributions`) of the 20 most important variables.

    Importance: |coefficient| on the standardised scale (the largest over classes, with the
    class it points to) for linear models, impurity importance for the forest.
    """
    samples = [s for s in mdata.obs_names if pd.notna(y.get(s))]
    yy = y.loc[samples]
    kind = endpoint_kind(yy, opts.endpoint_kind)
    if kind == "classification":
        yy = yy.astype(str)
    n_classes = yy.nunique() if kind == "classification" else 0
    feats = feature_table(mdata, samples)
    x = {"factors": factors.loc[samples], "features": feats, "l2_features": feats,
         "random_forest": feats, "stacked": feats, "elastic_net": feats,
         "both": pd.concat([factors.loc[samples], feats], axis=1)}[model]
    est = estimator(kind, model, opts, opts.inner_folds, n_classes, list(x.columns))
    with _one_blas_thread():
        est.fit(x.to_numpy(), yy.to_numpy())
    est.omix_columns = list(x.columns)  # the input columns, in order, for scoring new samples
    if hasattr(est, "cv_results_"):
        # wall-clock timings would make the saved model differ from run to run: drop them
        est.refit_time_ = 0.0
        for key in ("mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"):
            est.cv_results_[key] = np.zeros_like(est.cv_results_[key])
    names = list(x.columns)
    coef = linear_coefficients(est)
    classes = [str(c) for c in getattr(_pipeline(est), "classes_", [])]
    if coef is None:
        imp_v = _pipeline(est).named_steps["est"].feature_importances_
        signed, which = np.full(len(names), np.nan), [""] * len(names)
    else:
        row = np.argmax(np.abs(coef), axis=0)
        signed = coef[row, np.arange(coef.shape[1])]
        imp_v = np.abs(signed)
        which = ([classes[-1]] * len(names) if coef.shape[0] == 1 and classes
                 else [classes[r] for r in row] if classes else [""] * len(names))
    imp = pd.DataFrame({"variable": names, "importance": imp_v, "coefficient": signed,
                        "class": which})
    imp = imp.sort_values(["importance", "variable"], ascending=[False, True], kind="mergesort")
    imp.insert(0, "rank", np.arange(1, len(imp) + 1))
    top = imp[imp["importance"] > 0].head(20)
    idx = [names.index(v) for v in top["variable"]]
    c, cls = contributions(est, x.to_numpy(), top=idx)
    contrib = pd.DataFrame(c[:, idx], index=samples, columns=list(top["variable"]))
    if coef is not None:
        b = intercepts(est)
        contrib.insert(0, "intercept", b[cls] if coef.shape[0] > 1 else b[0])
    if classes:  # the class whose score the contributions explain
        contrib.insert(0, "class", [classes[k] for k in cls])
    return est, imp.reset_index(drop=True), contrib


# --------------------------------------------------------------------------------------------
# survival endpoint
# --------------------------------------------------------------------------------------------
PENALIZERS = (0.01, 0.1, 1.0, 10.0)


def _cox(z: pd.DataFrame, surv: pd.DataFrame, penalizer: float) -> RidgeCox:
    """lifelines' ridge Cox fit on ``z``, re-done on arrays (:mod:`omix.cox`: the same
    coefficients, 20-30x faster)."""
    s = surv.loc[z.index]
    return fit_ridge_cox(z.to_numpy(dtype=float), s["time"].to_numpy(dtype=float),
                         s["event"].to_numpy(), penalizer, names=[str(c) for c in z.columns])


def _c_index(model: RidgeCox, z: pd.DataFrame, surv: pd.DataFrame) -> float:
    """Harrell's C of the model's risks on ``z``; NaN where no pair is comparable (a held-out
    group without events)."""
    from lifelines.utils import concordance_index

    risk = model.partial_hazard(z.to_numpy(dtype=float))
    s = surv.loc[z.index]
    try:
        return float(concordance_index(s["time"], -risk, s["event"]))
    except ZeroDivisionError:   # lifelines: "No admissable pairs in the dataset."
        return float("nan")


def _tuned_cox(z: pd.DataFrame, surv: pd.DataFrame, opts: PredictOptions
               ) -> tuple[RidgeCox, float]:
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


def _cox_task(tr_s: list[str], te_s: list[str], f_tr: pd.DataFrame,
              held: dict[str, pd.DataFrame], z_tr: pd.DataFrame, z_te: pd.DataFrame,
              n_jobs: int = 1, *, surv: pd.DataFrame, opts: PredictOptions
              ) -> tuple[float, float, np.ndarray, float, float]:
    """The supervised part of one outer fold of :func:`nested_cv_survival` (a
    :func:`_mofa_folds` task): factors standardised with the training part's mean and SD, the
    tuned Cox model.  Returns (held-out C-index, penalty, held-out risks, the training part's
    median risk, which splits high from low risk, and the held-out C-index of the same
    procedure on two thirds of the training part, stratified on the event: the learning-curve
    point of :func:`summarise`; NaN where two thirds have too few events for the inner
    folds)."""
    from sklearn.model_selection import StratifiedShuffleSplit

    def standardised(fit_on: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        mu, sd = fit_on.mean(), fit_on.std(ddof=1).replace(0, 1.0)
        return (fit_on - mu) / sd, (z_te - mu) / sd

    zs_tr, zs_te = standardised(z_tr)
    cph, pen = _tuned_cox(zs_tr, surv, opts)
    risk_tr = cph.partial_hazard(zs_tr.to_numpy(dtype=float))
    risk_te = cph.partial_hazard(zs_te.to_numpy(dtype=float))
    ev = surv.loc[z_tr.index, "event"].to_numpy()
    try:
        sub = next(StratifiedShuffleSplit(1, train_size=2 / 3, random_state=opts.seed)
                   .split(np.zeros(len(ev)), ev))[0]
        small_tr, small_te = standardised(z_tr.iloc[sub])
        c_small = _c_index(_tuned_cox(small_tr, surv, opts)[0], small_te, surv)
    except ValueError:   # scikit-learn: too few events (or non-events) for the inner folds
        c_small = float("nan")
    return _c_index(cph, zs_te, surv), pen, risk_te, float(np.median(risk_tr)), c_small


def nested_cv_survival(mdata: Any, surv: pd.DataFrame, mofa_opts: MofaOptions,
                       opts: PredictOptions, fold_data: FoldData | None = None,
                       groups: pd.Series | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-fold C-index of a Cox model on the MOFA+ factors, MOFA+ refitted per fold.

    Outer: repeated k-fold stratified on the event indicator; in each training part MOFA+ is
    refitted and the held-out patients projected (as in :func:`nested_cv`), the factors are
    standardised with the training part's mean and SD, and a ridge-penalised Cox model
    (lifelines' fit, re-done on arrays by :mod:`omix.cox`) is fitted with its penalty chosen
    by inner-fold C-index.  The baseline is a model without covariates (C-index 0.5).  Each
    fold also refits the Cox model on two thirds of its training part (rows
    :data:`SURV_SMALLER`, a learning-curve point: see :func:`summarise`).  Returns (per-fold
    C-index, out-of-fold risks).
    """
    samples = [s for s in mdata.obs_names if s in surv.index]
    ev = surv.loc[samples, "event"].to_numpy()
    if opts.cv == "kfold" and (ev.sum() < opts.folds or (len(ev) - ev.sum()) < opts.folds):
        raise AnalysisError(f"{int(ev.sum())} events among {len(ev)} patients: too few for "
                            f"{opts.folds}-fold cross-validation of survival",
                            hint="lower predict.folds or set predict.survival: false")
    splitter, per_repeat, names = outer_splits(samples, ev, opts, groups)
    n_outer = per_repeat * (1 if names else opts.repeats)
    rows, preds = [], []
    task = partial(_cox_task, surv=surv.loc[samples], opts=opts)
    folds = _mofa_folds(samples, ev, splitter, fold_data or FoldData(mdata), mofa_opts,
                        opts.n_jobs, task)
    t0 = time.monotonic()
    for i, (_, te, (c, pen, risk_te, cut, c_small)) in enumerate(folds):
        rep, fold = divmod(i, per_repeat)
        te_s = [samples[j] for j in te]
        where = {"group": names[i]} if names else {}
        rows += [{"model": "factors", "repeat": rep + 1, "fold": fold + 1, "c_index": c,
                  **where},
                 {"model": "baseline", "repeat": rep + 1, "fold": fold + 1, "c_index": 0.5,
                  **where}]
        if np.isfinite(c_small):
            rows.append({"model": SURV_SMALLER, "repeat": rep + 1, "fold": fold + 1,
                         "c_index": c_small, **where})
        for s, r in zip(te_s, risk_te, strict=True):
            preds.append({"sample_id": s, "repeat": rep + 1, "fold": fold + 1, "risk": r,
                          "risk_group": "high" if r > cut else "low", "penalizer": pen,
                          "time": surv.loc[s, "time"], "event": int(surv.loc[s, "event"]),
                          **where})
        left = (time.monotonic() - t0) / (i + 1) * (n_outer - i - 1)
        progress(log, "survival: outer fold %d/%d done (C-index %.3f), %s left", i + 1,
                 n_outer, c, eta(left))
    return pd.DataFrame(rows), pd.DataFrame(preds)


def final_survival_model(z: pd.DataFrame, surv: pd.DataFrame, opts: PredictOptions
                         ) -> tuple[Any, pd.DataFrame]:
    """The Cox model on all patients' standardised factors: hazard ratio per SD with CIs.
    The penalty is tuned with :mod:`omix.cox`'s fits; the model at that penalty is fitted by
    lifelines (the same coefficients), whose summary gives the intervals and p-values."""
    from lifelines import CoxPHFitter

    z = z.loc[[s for s in z.index if s in surv.index]]
    zs = (z - z.mean()) / z.std(ddof=1).replace(0, 1.0)
    _, pen = _tuned_cox(zs, surv, opts)
    cph = CoxPHFitter(penalizer=pen).fit(
        zs.assign(_time=surv.loc[zs.index, "time"].to_numpy(),
                  _event=surv.loc[zs.index, "event"].to_numpy()),
        duration_col="_time", event_col="_event")
    s = cph.summary
    table = pd.DataFrame({"variable": s.index, "coefficient": s["coef"].to_numpy(),
                          "hazard_ratio_per_sd": s["exp(coef)"].to_numpy(),
                          "hr_ci_low": s["exp(coef) lower 95%"].to_numpy(),
                          "hr_ci_high": s["exp(coef) upper 95%"].to_numpy(),
                          "p": s["p"].to_numpy(), "penalizer": pen})
    return cph, table.sort_values("p", kind="mergesort").reset_index(drop=True)
