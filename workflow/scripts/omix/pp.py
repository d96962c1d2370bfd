"""Type-aware normalisation of one omic (scanpy's ``pp`` in spirit).

``normalize_omic`` takes the raw AnnData from ingest and returns a new AnnData whose ``X`` is
the normalised matrix (NaN where MOFA+ should treat a value as missing), ``layers["raw"]`` the
raw values of the kept features, per-feature QC in ``.var`` (including why features were
dropped, in ``uns``), per-sample QC in ``.obs`` and every fitted parameter in
``uns["omix"]["normalize"]`` so the same transform can later be applied to new samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .config import FromConfig
from .errors import AnalysisError

log = logging.getLogger("omix.pp")

LIKELIHOOD = {"counts": "gaussian", "intensity": "gaussian", "binary": "bernoulli",
              "beta": "gaussian", "continuous": "gaussian"}
BETA_EPS = 1e-3  # beta values are clipped to [eps, 1-eps] before the logit (M-value)


@dataclass(frozen=True)
class OmicOptions(FromConfig):
    """The per-omic options of the config (see config/schemas/config.schema.json)."""

    kind: str
    max_missing: float = 0.5
    min_variance: float = 1e-8
    n_top_features: int | None = 2000
    min_prevalence: float = 0.05
    log_transform: bool = True
    pqn: bool = False
    detection_limit: float | None = 0.0
    impute: str = "half_min"
    library_size: bool = True


# --------------------------------------------------------------------------------------------
# the transforms, each a pure function on a samples x features float array
# --------------------------------------------------------------------------------------------
def library_size_log1p(x: np.ndarray, target: float | None = None, name: str = "counts"
                       ) -> tuple[np.ndarray, float]:
    """Scale each sample to ``target`` total (default: median library size), then log1p.

    Same as ``scanpy.pp.normalize_total`` + ``scanpy.pp.log1p``; returns the target used.
    """
    import anndata as ad
    import scanpy as sc

    with np.errstate(over="ignore"):
        lib = x.sum(axis=1)
    if not np.all(np.isfinite(lib)):
        r = int(np.argmax(~np.isfinite(lib)))
        raise AnalysisError(f"{name}: the total count of sample {r + 1} (table order) "
                            "overflows (values too large for double precision)",
                            hint="check that table for corrupt or mis-scaled values (e.g. 1e300)")
    if np.any(lib <= 0):
        raise AnalysisError(f"{int(np.sum(lib <= 0))} sample(s) have a total count of 0",
                            hint="remove those samples from the table")
    target = float(np.median(lib)) if target is None else float(target)
    a = ad.AnnData(X=x.copy())
    sc.pp.normalize_total(a, target_sum=target)
    sc.pp.log1p(a)
    return np.asarray(a.X, dtype=np.float64), target


def pqn_factors(x: np.ndarray, reference: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilistic quotient normalisation (Dieterle et al. 2006) dilution factors.

    ``x``: raw intensities with NaN for censored values.  The reference spectrum is the feature-
    wise median; each sample's factor is the median of its quotients to the reference.  Written
    here because no maintained Python package provides PQN for NaN-containing tables; it is
    eight lines and tested against a hand-computed example.
    """
    ref = np.nanmedian(x, axis=0) if reference is None else reference
    with np.errstate(divide="ignore", invalid="ignore"):
        q = x / ref[None, :]
    q[~np.isfinite(q)] = np.nan
    q[q <= 0] = np.nan
    factors = np.nanmedian(q, axis=1)
    factors[~np.isfinite(factors)] = 1.0
    return factors, ref


def impute_left_censored(x: np.ndarray, censored: np.ndarray, method: str,
                         seed: int = 0) -> np.ndarray:
    """Fill censored (below-detection) cells of a log-scale matrix; other NaNs stay NaN.

    half_min: the feature's smallest observed value minus 1 (half the minimum on the raw scale,
    as log2(min / 2) = log2(min) - 1).  min_prob: imputeLCMD's MinProb -- draws from a normal
    centred on the sample's 1st percentile with the median feature SD, seeded.
    Features with no observed value keep NaN (they are dropped by the missingness filter).
    """
    out = x.copy()
    if method == "none" or not censored.any():
        return out
    observed = np.where(censored, np.nan, x)
    if method == "half_min":
        with np.errstate(all="ignore"):
            fmin = np.nanmin(np.where(np.isnan(observed), np.inf, observed), axis=0)
        fmin[~np.isfinite(fmin)] = np.nan
        fill = np.broadcast_to(fmin - 1.0, x.shape)
        out[censored] = fill[censored]
        return out
    if method == "min_prob":
        rng = np.random.default_rng(seed)
        q01 = np.nanquantile(observed, 0.01, axis=1)
        sd = float(np.nanmedian(np.nanstd(observed, axis=0)))
        draws = rng.normal(loc=q01[:, None], scale=max(sd, 1e-6) * 0.3, size=x.shape)
        out[censored] = draws[censored]
        return out
    raise AnalysisError(f"unknown imputation method '{method}'",
                        hint="use half_min, min_prob or none")


def m_values(beta: np.ndarray) -> np.ndarray:
    """Methylation beta values to M-values: log2(b / (1 - b)), clipped at BETA_EPS."""
    b = np.clip(beta, BETA_EPS, 1 - BETA_EPS)
    return np.log2(b / (1 - b))


def nan_variance(x: np.ndarray) -> np.ndarray:
    n = np.sum(~np.isnan(x), axis=0)
    with np.errstate(all="ignore"):
        v = np.nanvar(x, axis=0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1])
    v = np.where(n > 1, v, 0.0)
    return np.nan_to_num(v, nan=0.0)


# --------------------------------------------------------------------------------------------
# the per-omic pipeline
# --------------------------------------------------------------------------------------------
def _require_finite(x: np.ndarray, x0: np.ndarray, censored: np.ndarray, names: Any,
                    name: str, kind: str) -> None:
    """A measured value must stay a finite number through the transform: an overflow or a
    log of an impossible value is an error naming where, never a silent zero or NaN."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) & np.isfinite(x0) & ~censored
    if bad.any():
        r, c = np.argwhere(bad)[0]
        what = "an infinite value" if np.isinf(x[r, c]) else "NaN"
        raise AnalysisError(
            f"{name}: the {kind} transform turned {int(bad.sum())} measured value(s) into "
            f"{what} or NaN (first: sample row {r + 1}, feature '{names[c]}')",
            hint="check that table for extreme or mis-scaled values (e.g. 1e300) or use "
                 "kind: continuous for data already on a log scale")


def normalize_omic(raw: Any, opts: OmicOptions, *, batch: pd.Series | None = None,
                   seed: int = 0) -> Any:
    """Normalise one omic: filter, transform by kind, select features, optionally ComBat."""
    import anndata as ad

    name = raw.uns.get("omix", {}).get("omic", "omic")
    x0 = np.asarray(raw.X, dtype=np.float64)
    _n, d0 = x0.shape
    steps: dict[str, int] = {"features_in": int(d0)}
    params: dict[str, Any] = {"kind": opts.kind, "likelihood": LIKELIHOOD[opts.kind]}

    censored = np.isnan(x0)
    if opts.kind == "intensity":
        # an intensity of 0 is below detection, not a measured value (its log is -inf)
        censored |= x0 <= (opts.detection_limit if opts.detection_limit is not None else 0.0)
    miss = censored.mean(axis=0)
    keep = miss <= opts.max_missing
    steps["dropped_missing"] = int((~keep).sum())
    if opts.kind == "binary":
        with np.errstate(all="ignore"):
            prev = np.nanmean(x0, axis=0)
        common = np.minimum(prev, 1 - prev) >= opts.min_prevalence
        steps["dropped_prevalence"] = int((keep & ~common).sum())
        keep &= common
    if not keep.any():
        raise AnalysisError(f"{name}: no feature passes the missingness/prevalence filters",
                            hint="raise max_missing or lower min_prevalence for this omic")
    x0k, cens_k = x0[:, keep], censored[:, keep]
    var_names = raw.var_names[keep]
    # what new samples need to be transformed the same way (omix.apply): the feature set
    # that library sizes, PQN quotients and sample medians are taken over
    params["input_features"] = np.asarray(var_names.astype(str), dtype=object)

    if opts.kind == "counts":
        if opts.library_size:
            x, target = library_size_log1p(x0k, name=name)
            params["library_size_target"] = target
            with np.errstate(all="ignore"):
                frac = np.nan_to_num(x0k / np.nansum(x0k, axis=1, keepdims=True))
            params["library_fraction"] = frac.mean(axis=0)
        else:
            x = np.log1p(x0k)
    elif opts.kind == "intensity":
        xi = np.where(cens_k, np.nan, x0k)
        if opts.pqn:
            f, ref = pqn_factors(xi)
            xi = xi / f[:, None]
            params["pqn_reference"] = ref
            params["pqn_reference_input"] = ref.copy()
            raw_obs_pqn = f
        if opts.log_transform:
            with np.errstate(divide="ignore", invalid="ignore"):
                xi = np.log2(xi)
            xi[~np.isfinite(xi)] = np.nan
        med = np.nanmedian(xi, axis=1)
        med = np.nan_to_num(med, nan=0.0)
        xi = xi - med[:, None]
        params["sample_medians_removed"] = True
        x = impute_left_censored(xi, cens_k, opts.impute, seed=seed)
    elif opts.kind == "beta":
        x = m_values(x0k)
    else:  # binary, continuous
        x = x0k.copy()

    _require_finite(x, x0k, cens_k, var_names, name, opts.kind)
    var = nan_variance(x)
    ok = var > opts.min_variance
    steps["dropped_low_variance"] = int((~ok).sum())
    x, x0k, cens_k, var_names, var = x[:, ok], x0k[:, ok], cens_k[:, ok], var_names[ok], var[ok]

    hv = np.ones(x.shape[1], dtype=bool)
    if opts.n_top_features is not None and x.shape[1] > opts.n_top_features:
        if opts.kind == "counts":
            import scanpy as sc

            a = ad.AnnData(X=x.copy())
            sc.pp.highly_variable_genes(a, n_top_genes=opts.n_top_features, flavor="seurat")
            hv = a.var["highly_variable"].to_numpy()
        else:
            order = np.lexsort((np.arange(len(var)), -var))  # ties broken by file order
            hv = np.zeros(x.shape[1], dtype=bool)
            hv[order[: opts.n_top_features]] = True
    steps["dropped_top_n"] = int((~hv).sum())
    x, x0k, cens_k, var_names = x[:, hv], x0k[:, hv], cens_k[:, hv], var_names[hv]
    if x.shape[1] == 0:
        raise AnalysisError(f"{name}: no feature left after filtering",
                            hint="relax min_variance / max_missing for this omic")

    if batch is not None:
        x = _combat(x, batch.loc[raw.obs_names], name)
        _require_finite(x, x0k, cens_k, var_names, name, f"{opts.kind} + ComBat")
        params["batch_corrected"] = True

    out = ad.AnnData(X=x)
    out.obs_names = raw.obs_names.copy()
    out.var_names = pd.Index(var_names)
    out.layers["raw"] = x0k
    out.obs["n_measured"] = raw.obs["n_measured"].to_numpy()
    out.obs["missing_fraction"] = cens_k.mean(axis=1)
    if opts.kind == "counts":
        out.obs["library_size"] = raw.X.sum(axis=1)
    if opts.kind == "intensity" and opts.pqn:
        out.obs["pqn_factor"] = raw_obs_pqn
        params["pqn_reference"] = params["pqn_reference"][ok][hv]
    out.var["missing_fraction"] = cens_k.mean(axis=0)
    with np.errstate(all="ignore"):
        out.var["mean"] = np.nanmean(x, axis=0)
    out.var["variance"] = nan_variance(x)
    if opts.kind == "intensity":
        out.layers["censored"] = cens_k.astype(np.float32)
    steps["features_out"] = int(out.n_vars)
    out.uns["omix"] = dict(raw.uns.get("omix", {}))
    out.uns["omix"]["normalize"] = params
    out.uns["omix"]["filter_steps"] = steps
    log.info("%s: %s", name, ", ".join(f"{k}={v}" for k, v in steps.items()))
    return out


def _combat(x: np.ndarray, batch: pd.Series, name: str) -> np.ndarray:
    """ComBat (scanpy) on the features with no missing value; others are left as they are."""
    import anndata as ad
    import scanpy as sc

    if batch.isna().any():
        raise AnalysisError(f"{name}: {int(batch.isna().sum())} sample(s) have no batch label",
                            hint="fill the batch column of the sample sheet for every sample")
    counts = batch.astype(str).value_counts()
    if (counts < 2).any():
        raise AnalysisError(f"{name}: batch '{counts.idxmin()}' has a single sample",
                            hint="ComBat needs at least two samples per batch; merge batches")
    complete = ~np.isnan(x).any(axis=0)
    if (~complete).any():
        log.warning("%s: %d feature(s) with missing values are not batch-corrected", name,
                    int((~complete).sum()))
    a = ad.AnnData(X=x[:, complete].copy())
    a.obs["batch"] = pd.Categorical(batch.astype(str).to_numpy())
    sc.pp.combat(a, key="batch")
    out = x.copy()
    out[:, complete] = np.asarray(a.X)
    return out
