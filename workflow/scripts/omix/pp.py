"""Type-aware normalisation of one omic (scanpy's ``pp`` in spirit).

``normalize_omic`` takes the raw AnnData from ingest and returns a new AnnData whose ``X`` is
the normalised matrix (NaN where MOFA+ should treat a value as missing), ``layers["raw"]`` the
raw values of the kept features, per-feature QC in ``.var`` (including why features were
dropped, in ``uns``), per-sample QC in ``.obs`` and every fitted parameter in
``uns["omix"]["normalize"]`` so the same transform can later be applied to new samples.
"""

from __future__ import annotations

import json
import logging
import warnings
import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError, ConfigError, Ticker
from .io import floats_from_json, json_floats
from .options import FromConfig

log = logging.getLogger("omix.pp")

LIKELIHOOD = {"counts": "gaussian", "intensity": "gaussian", "binary": "bernoulli",
              "beta": "gaussian", "continuous": "gaussian"}
BETA_EPS = 1e-3  # beta values are clipped to [eps, 1-eps] before the logit (M-value)
MIN_PROB_SD_SCALE = 0.3  # MinProb draws with 0.3 x the median feature SD (imputeLCMD tune.sigma)
# kinds whose transform maps each feature on its own (no per-sample statistic over features):
# they are normalised over the model's features only and filtered in column blocks, so a
# methylation array of 450,000+ probes needs memory for its raw table, not for five copies of it
COLUMN_LOCAL = ("beta", "binary", "continuous")
BLOCK_CELLS = 8_000_000  # cells per column block of a column-local kind (64 MB of floats)


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
# checks
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


# --------------------------------------------------------------------------------------------
# the per-omic normaliser: fit on discovery samples, transform any samples (sklearn's idiom)
# --------------------------------------------------------------------------------------------
NORMALIZER_FORMAT = 2  # version of the parameters' JSON (normalization.json of the bundle)
_OPTION_KEYS = ("log_transform", "pqn", "detection_limit", "impute", "library_size")


def _censored(xi: np.ndarray, present: np.ndarray, kind: str, options: dict[str, Any]
              ) -> np.ndarray:
    """Cells to impute as below detection: missing cells of features the table has, and for
    intensities every value at or below the detection limit (0 by default: its log is -inf)."""
    cens = np.isnan(xi) & present[None, :]
    if kind == "intensity":
        dl = options.get("detection_limit")
        with np.errstate(invalid="ignore"):
            cens |= xi <= (dl if dl is not None else 0.0)
    return cens


def _patient_rng(seed: int, sample: str) -> np.random.Generator:
    """The random stream of one patient: seeded by the normaliser's seed and the sample ID
    only, so a patient's draws do not depend on which other patients are transformed."""
    return np.random.default_rng([int(seed), zlib.crc32(str(sample).encode())])


@dataclass
class Transformed:
    """The output of :meth:`Normalizer.transform`."""

    x: pd.DataFrame            # samples x model features, NaN = missing for MOFA+
    censored: np.ndarray       # same shape: cells below detection (imputed)
    obs: pd.DataFrame          # per-sample statistics (library size, PQN factor, ...)
    info: dict[str, int]       # how many input and model features the table lacks


@dataclass
class Normalizer:
    """The fitted per-omic transform: plain data (JSON in the bundle), applied by ``transform``.

    ``fit`` learns everything from the discovery samples: which features enter (missingness,
    prevalence), the library-size target and each feature's mean share of the library, the
    PQN reference spectrum, the censored-value fills, and which features the model keeps
    (variance, highly variable).  ``transform`` applies them to any samples; every per-sample
    statistic (library size, PQN quotient, sample median, 1st percentile, censored draws) is
    that sample's own, so a patient's output does not depend on the other patients in the table.
    The discovery's own normalised matrix *is* ``transform`` of its raw table (ComBat aside,
    which only the discovery gets), so discovery, every nested-CV fold and ``apply`` run this
    one code path.
    """

    kind: str
    options: dict[str, Any]
    input_features: list[str]
    features: list[str]
    seed: int = 0
    library_size_target: float | None = None
    library_fraction: np.ndarray | None = None   # over input_features
    pqn_reference: np.ndarray | None = None      # over input_features
    impute_fill: np.ndarray | None = None        # over input_features (half_min)
    min_prob_sd: float | None = None
    batch_corrected: bool = False

    @property
    def likelihood(self) -> str:
        return LIKELIHOOD[self.kind]

    # ---- serialisation ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": NORMALIZER_FORMAT, "kind": self.kind, "likelihood": self.likelihood,
            "options": dict(self.options), "input_features": list(self.input_features),
            "features": list(self.features), "seed": int(self.seed),
            "batch_corrected": bool(self.batch_corrected)}
        if self.library_size_target is not None:
            d["library_size_target"] = float(self.library_size_target)
        for k in ("library_fraction", "pqn_reference", "impute_fill"):
            if getattr(self, k) is not None:
                d[k] = json_floats(getattr(self, k))
        if self.min_prob_sd is not None:
            d["min_prob_sd"] = float(self.min_prob_sd)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], source: str = "normalization parameters"
                  ) -> Normalizer:
        if d.get("format") != NORMALIZER_FORMAT:
            raise ConfigError(f"{source} were written by an older version of this workflow "
                              f"(format {d.get('format', 1)}, expected {NORMALIZER_FORMAT})",
                              hint="re-run the discovery workflow to rebuild its model bundle")
        arrays = {k: floats_from_json(d[k]) for k in ("library_fraction", "pqn_reference",
                                                       "impute_fill") if k in d}
        return cls(kind=d["kind"], options=dict(d["options"]),
                   input_features=[str(f) for f in d["input_features"]],
                   features=[str(f) for f in d["features"]], seed=int(d["seed"]),
                   library_size_target=d.get("library_size_target"),
                   min_prob_sd=d.get("min_prob_sd"),
                   batch_corrected=bool(d.get("batch_corrected", False)), **arrays)

    @classmethod
    def of(cls, a: Any) -> Normalizer:
        """The normaliser stored in a normalised AnnData (``uns["omix"]["normalize"]``)."""
        omic = a.uns.get("omix", {}).get("omic", "omic")
        stored = a.uns.get("omix", {}).get("normalize", {}).get("normalizer")
        if stored is None:  # results/ of a version before the Normalizer
            raise ConfigError(f"the normalised data of {omic} were written by an older "
                              "version of this workflow (no normaliser parameters)",
                              hint="re-run normalisation: snakemake --forcerun normalize")
        return cls.from_json(json.loads(stored), source=f"the normalised data of {omic}")

    # ---- transform ----------------------------------------------------------------------------
    def _transform_inputs(self, xi: np.ndarray, cens: np.ndarray, name: str
                          ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Raw values over the input features -> the kind's scale, censored cells still NaN;
        per-sample statistics; each sample's 1st percentile of observed values (min_prob)."""
        kind, opts = self.kind, self.options
        stats: dict[str, np.ndarray] = {}
        q01 = np.full(len(xi), np.nan)
        if kind == "counts":
            with np.errstate(over="ignore"):
                lib = np.nansum(xi, axis=1)
            stats["library_size"] = lib
            if not np.all(np.isfinite(lib)):
                r = int(np.argmax(~np.isfinite(lib)))
                raise AnalysisError(f"{name}: the total count of sample {r + 1} (table order) "
                                    "overflows (values too large for double precision)",
                                    hint="check that table for corrupt or mis-scaled values "
                                         "(e.g. 1e300)")
            if opts.get("library_size", True):
                if np.any(lib <= 0):
                    raise AnalysisError(f"{name}: {int(np.sum(lib <= 0))} sample(s) have a "
                                        "total count of 0",
                                        hint="remove those samples from the table")
                assert self.library_fraction is not None and self.library_size_target
                # a library summed over fewer features (absent columns, missing cells) is
                # compared with the same share of the discovery target; scanpy's
                # normalize_total has no notion of that share, hence written out here
                # a row-wise sum, not a matrix product: BLAS may sum a row differently
                # depending on how many rows come with it, and a patient's value must not
                share = np.where(np.isnan(xi), 0.0, np.nan_to_num(self.library_fraction)
                                 ).sum(axis=1)
                if np.any(share <= 0):
                    raise AnalysisError(f"{name}: none of the discovery's count features is "
                                        "measured in some sample(s)",
                                        hint="check that the table holds the same genes")
                y = np.log1p(xi * (self.library_size_target * share / lib)[:, None])
            else:
                y = np.log1p(xi)
        elif kind == "intensity":
            y = np.where(cens, np.nan, xi)
            if opts.get("pqn"):
                assert self.pqn_reference is not None
                f, _ = pqn_factors(y, self.pqn_reference)
                y = y / f[:, None]
                stats["pqn_factor"] = f
            if opts.get("log_transform", True):
                with np.errstate(divide="ignore", invalid="ignore"):
                    y = np.log2(y)
                y[~np.isfinite(y)] = np.nan
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: median 0
                med = np.nanmedian(y, axis=1) if y.size else np.zeros(len(y))
                if opts.get("impute") == "min_prob":
                    q01 = np.nanquantile(y, 0.01, axis=1) if y.size else q01
            med = np.nan_to_num(med, nan=0.0)
            y = y - med[:, None]
            q01 = q01 - med
        elif kind == "beta":
            y = m_values(xi)
        else:  # binary, continuous
            y = xi.copy()
        return y, stats, q01

    def _impute(self, y: np.ndarray, cens: np.ndarray, q01: np.ndarray,
                samples: Any) -> np.ndarray:
        method = self.options.get("impute", "none")
        if self.kind != "intensity" or method == "none" or not cens.any():
            return y
        out = y.copy()
        if method == "half_min":
            assert self.impute_fill is not None
            fill = np.broadcast_to(self.impute_fill, y.shape)
            out[cens] = fill[cens]
        elif method == "min_prob":
            # imputeLCMD's MinProb with the discovery's spread and each sample's own stream
            sd = max(float(self.min_prob_sd or 0.0), 1e-6) * MIN_PROB_SD_SCALE
            for i in np.flatnonzero(cens.any(axis=1)):
                draws = _patient_rng(self.seed, samples[i]).normal(q01[i], sd, y.shape[1])
                out[i, cens[i]] = draws[cens[i]]
        else:
            raise AnalysisError(f"unknown imputation method '{method}'",
                                hint="use half_min, min_prob or none")
        return out

    def transform(self, x: pd.DataFrame, name: str = "omic") -> Transformed:
        """Raw values of any samples (samples x features, any feature set, any order) -> the
        normalised scale over the model's features (NaN where a feature is absent)."""
        inp = pd.Index(self.input_features)
        present = inp.isin(x.columns)
        cols = inp.get_indexer(self.features)
        info = {"input_features": len(inp), "input_features_missing": int((~present).sum()),
                "model_features": len(self.features),
                "model_features_missing": int((~present[cols]).sum())}
        if self.kind in COLUMN_LOCAL:  # the other input features cannot change the output
            inp, present = inp[cols], present[cols]
            cols = np.arange(len(cols))
        # row-major: a row's sums must be computed the same way whether the table holds one
        # patient or a thousand (pandas hands out column-major arrays, whose row sums numpy
        # accumulates in another order than a single row's pairwise sum)
        xi = np.ascontiguousarray(x.reindex(columns=inp).to_numpy(dtype=float))
        cens = _censored(xi, present, self.kind, self.options)
        y, stats, q01 = self._transform_inputs(xi, cens, name)
        y = self._impute(y, cens, q01, list(x.index))
        _require_finite(y, xi, cens, inp, name, self.kind)
        obs = pd.DataFrame(stats, index=x.index)
        obs["missing_fraction"] = cens[:, cols].mean(axis=1) if len(cols) else 0.0
        return Transformed(pd.DataFrame(y[:, cols], index=x.index, columns=self.features),
                           cens[:, cols], obs, info)

    # ---- fit ------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, raw: Any, opts: OmicOptions, *, seed: int = 0
            ) -> tuple[Normalizer, dict[str, int]]:
        """Learn the transform from the discovery samples of ``raw`` (an ingested AnnData)."""
        name = raw.uns.get("omix", {}).get("omic", "omic")
        x0 = np.asarray(raw.X, dtype=np.float64)
        steps: dict[str, int] = {"features_in": int(x0.shape[1])}
        options = {k: getattr(opts, k) for k in _OPTION_KEYS}
        censored = _censored(x0, np.ones(x0.shape[1], dtype=bool), opts.kind, options)
        keep = censored.mean(axis=0) <= opts.max_missing
        steps["dropped_missing"] = int((~keep).sum())
        if opts.kind == "binary":
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                prev = np.nanmean(x0, axis=0)
            common = np.minimum(prev, 1 - prev) >= opts.min_prevalence
            steps["dropped_prevalence"] = int((keep & ~common).sum())
            keep &= common
        if not keep.any():
            raise AnalysisError(f"{name}: no feature passes the missingness/prevalence filters",
                                hint="raise max_missing or lower min_prevalence for this omic")
        inputs = [str(v) for v in raw.var_names[keep]]
        nz = cls(kind=opts.kind, options=options, input_features=inputs, features=inputs,
                 seed=seed)
        samples = raw.obs_names.astype(str)
        if opts.kind in COLUMN_LOCAL:
            var = nz._variance_in_blocks(x0, np.flatnonzero(keep), samples, name)
            x = None
        else:
            x, var = nz._fit_statistics(x0[:, keep], censored[:, keep], samples, name)
        ok = var > opts.min_variance
        steps["dropped_low_variance"] = int((~ok).sum())
        hv = _top_features(var[ok], opts, None if x is None else x[:, ok])
        steps["dropped_top_n"] = int((~hv).sum())
        nz.features = [f for f, k in zip(np.asarray(inputs)[ok], hv, strict=True) if k]
        if not nz.features:
            raise AnalysisError(f"{name}: no feature left after filtering",
                                hint="relax min_variance / max_missing for this omic")
        return nz, steps

    def _variance_in_blocks(self, x0: np.ndarray, idx: np.ndarray, samples: pd.Index,
                            name: str) -> np.ndarray:
        """Each input feature's variance after the transform of a column-local kind, computed
        block by block: the numbers of the whole matrix's (each column is reduced on its own, in
        the same memory layout), without its full-size copies."""
        var = np.empty(len(idx))
        step = max(1, BLOCK_CELLS // max(len(x0), 1))
        tick = Ticker(log, f"{name}: feature variances", len(idx), "features")
        for start in range(0, len(idx), step):
            tick(start)
            blk = slice(start, start + step)
            names = self.input_features[blk]
            part = replace(self, input_features=names, features=names)
            xb = pd.DataFrame(x0[:, idx[blk]], index=samples, columns=names)
            var[blk] = nan_variance(part.transform(xb, name=name).x.to_numpy())
        return var

    def _fit_statistics(self, xk: np.ndarray, cens: np.ndarray, samples: pd.Index,
                        name: str) -> tuple[np.ndarray, np.ndarray]:
        """Fit the per-feature statistics of counts and intensities (library shares, PQN
        reference, censored-value fills); return the transformed matrix and its variances."""
        opts, inputs = self.options, self.input_features
        if self.kind == "counts" and opts.get("library_size", True):
            with np.errstate(over="ignore", invalid="ignore"):
                lib = np.nansum(xk, axis=1)
                frac = np.nan_to_num(xk / lib[:, None])
            # (an overflowing library is refused by the transform below, naming the sample)
            self.library_size_target = float(np.median(lib))
            self.library_fraction = frac.mean(axis=0)
        if self.kind == "intensity" and opts.get("pqn"):
            self.pqn_reference = np.nanmedian(np.where(cens, np.nan, xk), axis=0)
        if self.kind == "intensity":
            y, _, _ = self._transform_inputs(xk, cens, name)
            observed = np.where(cens, np.nan, y)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                fmin = np.nanmin(np.where(np.isnan(observed), np.inf, observed), axis=0)
                sd = float(np.nanmedian(np.nanstd(observed, axis=0)))
            self.impute_fill = np.where(np.isfinite(fmin), fmin - 1.0, np.nan)
            self.min_prob_sd = sd if np.isfinite(sd) else 1e-6
        # the matrix the feature filters see is the transform's own output
        x = self.transform(pd.DataFrame(xk, index=samples, columns=inputs),
                           name=name).x.to_numpy()
        return x, nan_variance(x)


def _top_features(var: np.ndarray, opts: OmicOptions, x: np.ndarray | None) -> np.ndarray:
    """Mask of the ``n_top_features`` most variable features (scanpy's seurat flavour of
    highly variable genes for counts, from the matrix ``x``; ties broken by file order
    otherwise)."""
    hv = np.ones(len(var), dtype=bool)
    if opts.n_top_features is None or len(var) <= opts.n_top_features:
        return hv
    if opts.kind == "counts":
        assert x is not None
        import anndata as ad
        import scanpy as sc

        a = ad.AnnData(X=x.copy())
        sc.pp.highly_variable_genes(a, n_top_genes=opts.n_top_features, flavor="seurat")
        return a.var["highly_variable"].to_numpy()
    order = np.lexsort((np.arange(len(var)), -var))
    hv[:] = False
    hv[order[: opts.n_top_features]] = True
    return hv


def normalize_omic(raw: Any, opts: OmicOptions, *, batch: pd.Series | None = None,
                   seed: int = 0) -> Any:
    """Normalise one omic: fit the :class:`Normalizer` on ``raw`` and transform it, then
    optionally ComBat.  Returns the normalised AnnData (see the module docstring)."""
    import anndata as ad

    name = raw.uns.get("omix", {}).get("omic", "omic")
    nz, steps = Normalizer.fit(raw, opts, seed=seed)
    xdf = pd.DataFrame(np.asarray(raw.X, dtype=np.float64), index=raw.obs_names.astype(str),
                       columns=raw.var_names.astype(str))
    t = nz.transform(xdf, name=name)
    x = t.x.to_numpy()
    cols = raw.var_names.get_indexer(nz.features)
    x0k = np.asarray(raw.X, dtype=np.float64)[:, cols]
    if batch is not None:
        x = _combat(x, batch.loc[raw.obs_names], name)
        _require_finite(x, x0k, t.censored, nz.features, name, f"{opts.kind} + ComBat")
        nz.batch_corrected = True

    out = ad.AnnData(X=x)
    out.obs_names = raw.obs_names.copy()
    out.var_names = pd.Index(nz.features)
    out.layers["raw"] = x0k
    out.obs["n_measured"] = raw.obs["n_measured"].to_numpy()
    out.obs["missing_fraction"] = t.obs["missing_fraction"].to_numpy()
    for c in ("library_size", "pqn_factor"):
        if c in t.obs:
            out.obs[c] = t.obs[c].to_numpy()
    out.var["missing_fraction"] = t.censored.mean(axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out.var["mean"] = np.nanmean(x, axis=0)
    out.var["variance"] = nan_variance(x)
    if opts.kind == "intensity":
        out.layers["censored"] = t.censored.astype(np.float32)
    steps["features_out"] = int(out.n_vars)
    out.uns["omix"] = dict(raw.uns.get("omix", {}))
    out.uns["omix"]["normalize"] = {"kind": opts.kind, "likelihood": nz.likelihood,
                                    "normalizer": json.dumps(nz.to_json(), sort_keys=True)}
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
