"""One outer fold of ``predict``'s candidates, each timed; the L1 ones also as they were solved
before 2026-12-02 (scikit-learn's grid search over one-vs-rest liblinear).

``python -m omix.predict_bench RUN_DIR [--fold K] [--models features,both] [--no-reference]``

RUN_DIR is a finished workflow directory (its ``config.yaml`` and ``results/<cohort>/``, e.g.
one of ``omix.workflow_bench``'s).  Outer fold K (of the rule's repeated stratified k-fold) is
prepared as the rule prepares it, with one BLAS thread: every omic renormalised on the
training patients, MOFA+ fitted there, the held-out patients transformed and projected.  Each
candidate is then fitted on the training part and prints its seconds, inner score, chosen C
and held-out macro AUC.  A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from . import io
from . import predict as pr
from .mofa import MofaOptions
from .outcome import endpoint_kind


def liblinear_grid(opts: pr.PredictOptions, seed: int = 0) -> Any:
    """The L1 candidates' estimator before 2026-12-02: GridSearchCV over C of one-vs-rest
    liblinear (which penalises the intercept) in the same pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .impute import MedianImputer

    lr = OneVsRestClassifier(LogisticRegression(
        l1_ratio=1.0, solver="liblinear", max_iter=5000, class_weight="balanced",
        random_state=seed))
    pipe = Pipeline([("impute", MedianImputer()), ("scale", StandardScaler()), ("est", lr)])
    return GridSearchCV(pipe, {"est__estimator__C": list(opts.c_grid)},
                        cv=StratifiedKFold(opts.inner_folds, shuffle=True, random_state=seed),
                        scoring="roc_auc_ovr")


@dataclass
class ClassRun:
    """What the rule's nested CV starts from, read from a finished run directory (its
    ``config.yaml`` and ``results/<cohort>/``): the config, the raw tables of the folds, the
    options and the patients with a known class endpoint."""

    cfg: dict[str, Any]
    fd: pr.FoldData
    opts: pr.PredictOptions
    samples: list[str]
    yy: np.ndarray

    @classmethod
    def load(cls, run_dir: Path) -> ClassRun:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        res = run_dir / "results" / cfg["cohort"]
        mdata = io.read_h5mu(res / f"{cfg['cohort']}.h5mu")
        endpoint = (cfg.get("predict") or {}).get("endpoint") or cfg["outcome"]
        y = io.read_sample_sheet(res / "samples.tsv")[endpoint]
        fd = pr.FoldData.of_run(mdata, res / "samples.tsv",
                                {o: res / "ingest" / f"{o}.h5ad" for o in mdata.mod},
                                cfg["omics"], (cfg.get("normalize") or {}).get("batch"))
        opts = pr.PredictOptions.from_config(dict(cfg.get("predict") or {}))
        samples = [s for s in mdata.obs_names if pd.notna(y.get(s))]
        if endpoint_kind(y.loc[samples], opts.endpoint_kind) != "classification":
            raise SystemExit(f"{endpoint} is not a class endpoint: these benchmarks run the "
                             "class candidates")
        return cls(cfg, fd, opts, samples, y.loc[samples].astype(str).to_numpy())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--fold", type=int, default=0, help="outer fold, 0-based over repeats")
    ap.add_argument("--models", default=",".join(pr.MODELS))
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the liblinear grid search of the L1 candidates")
    a = ap.parse_args(argv)
    out = sys.stdout   # MOFA+'s chatter goes to /dev/null (below), the figures here
    run = ClassRun.load(a.run_dir)
    cfg, fd, opts, samples, yy = run.cfg, run.fd, run.opts, run.samples, run.yy
    splitter, _, _ = pr.outer_splits(samples, yy, opts, None)
    tr, te = list(splitter.split(np.zeros(len(yy)), yy))[a.fold]
    tr_s, te_s = [samples[i] for i in tr], [samples[i] for i in te]
    n_classes = len(set(yy))

    def task(tr_s: list[str], te_s: list[str], f_tr: pd.DataFrame,
             held: dict[str, pd.DataFrame], z_tr: pd.DataFrame, z_te: pd.DataFrame,
             n_jobs: int = 1) -> None:
        blocks = pr.candidate_blocks(tr_s, te_s, f_tr, held, z_tr, z_te)
        y_tr, y_te = yy[tr], yy[te]
        print(f"# fold {a.fold}: {len(tr_s)} training x {f_tr.shape[1]} features, "
              f"{len(te_s)} held out, {n_classes} classes; prepared in "
              f"{time.monotonic() - t0:.1f} s", file=out, flush=True)
        print("model, estimator, seconds, inner_score, chosen, heldout_auc", file=out,
              flush=True)
        for model in a.models.split(","):
            xtr, xte = blocks[model]
            ests = [("omix", pr.estimator("classification", model, opts, opts.inner_folds,
                                          n_classes, list(xtr.columns)))]
            if model in ("features", "both") and not a.no_reference:
                ests.append(("liblinear grid", liblinear_grid(opts, opts.seed)))
            for name, est in ests:
                t = time.monotonic()
                with pr._one_blas_thread():
                    est.fit(xtr.to_numpy(), y_tr)
                secs = time.monotonic() - t
                pred, proba = est.predict(xte.to_numpy()), est.predict_proba(xte.to_numpy())
                auc = pr._metrics("classification", y_te, pred, proba, list(est.classes_))["auc"]
                chosen = next(iter(getattr(est, "best_params_", {"-": "-"}).values()))
                print(f"{model}, {name}, {secs:.2f}, "
                      f"{pr.inner_score(est, 'classification', y_tr):.4f}, {chosen}, {auc:.4f}",
                      file=out, flush=True)

    t0 = time.monotonic()
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        pr._fit_fold(fd, tr_s, te_s, MofaOptions.from_config(dict(cfg.get("integrate") or {})),
                     None, os.getpid(), task, 1)


if __name__ == "__main__":
    main()
