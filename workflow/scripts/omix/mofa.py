"""MOFA+ (mofapy2): options, fit (fast engine or stock), the one reader of the model file,
the one factor table of a MuData, and the frozen projection of new samples.

``fit_mofa``/``save_mofa`` train and write mofapy2's model file (plus ``omix_tau``, the noise
precisions, and ``omix_w2``, E[w^2], which mofapy2 does not save); ``read_mofa_model`` is the
only code that parses that file; ``attach_mofa`` stores the result in the MuData
(``obsm["X_mofa"]``, ``varm["LFs"]``, ``uns["mofa"]``) and ``factor_table`` reads it back.
``FrozenMofa`` places new samples on the trained weights with MOFA+'s own factor update.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError
from .io import omic_features
from .options import FromConfig
from .pp import LIKELIHOOD

log = logging.getLogger("omix.mofa")


# --------------------------------------------------------------------------------------------
# MOFA+
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MofaOptions(FromConfig):
    factors: int = 10
    iterations: int = 1000
    convergence: str = "fast"
    seed: int = 42
    scale_views: bool = True
    spikeslab_weights: bool = True
    ard_weights: bool = True
    save_data: bool = False
    min_r2: float = 1.0
    engine: str = "fast"
    float32: bool = False
    init: str = "mofapy2"


@dataclass
class MofaResult:
    factors: pd.DataFrame                    # samples x factors
    weights: dict[str, pd.DataFrame]          # view -> features x factors
    r2: pd.DataFrame                          # views x factors, percent
    r2_total: pd.Series                       # view -> percent
    info: dict[str, Any] = field(default_factory=dict)
    likelihoods: dict[str, str] = field(default_factory=dict)        # view -> likelihood
    tau: dict[str, np.ndarray | None] = field(default_factory=dict)  # Gaussian noise precision
    weights2: dict[str, np.ndarray | None] = field(default_factory=dict)  # E[w^2], D x K
    # MOFA+ groups (sites, batches): each group's variance explained (views x factors and
    # per view, percent) and each sample's group; one group "group1" without ``groups:``
    r2_groups: dict[str, pd.DataFrame] = field(default_factory=dict)
    r2_total_groups: dict[str, pd.Series] = field(default_factory=dict)
    sample_groups: pd.Series | None = None


def view_matrix(mdata: Any, view: str, samples: list[str]) -> np.ndarray:
    """One view's N x D matrix over ``samples``: NaN rows where a sample lacks the view."""
    a = mdata.mod[view]
    x = np.full((len(samples), a.n_vars), np.nan)
    idx = pd.Index(samples).get_indexer(a.obs_names)
    rows = np.flatnonzero(idx >= 0)
    # in row blocks of about 64 MB: no whole-view temporaries (a cast and a row selection
    # of the whole view were two at 10,000 x 20,000)
    step = max(1, (64 * 2**20) // (8 * max(a.n_vars, 1)))
    for lo in range(0, len(rows), step):
        block = rows[lo:lo + step]
        x[idx[block]] = np.asarray(a.X[block], dtype=np.float64)
    return x


MIN_GROUP_SIZE = 3   # MOFA+ centres each group: fewer samples leave nothing to model


def sample_groups(mdata: Any, column: str | None) -> tuple[list[str], list[list[str]]]:
    """MOFA+ groups from the sample-sheet column ``column`` (in ``mdata.obs``): the group
    names (sorted) and each group's samples in MuData order; one group ``group1`` if None."""
    samples = list(mdata.obs_names)
    if column is None:
        return ["group1"], [samples]
    if column not in mdata.obs.columns:
        raise AnalysisError(f"groups column '{column}' is not in the MuData's sample table",
                            hint="re-run the workflow from ingest after setting groups:")
    g = mdata.obs[column]
    if g.isna().any():
        raise AnalysisError(f"{int(g.isna().sum())} sample(s) have no value in the groups "
                            f"column '{column}', e.g. {g.index[g.isna()][0]}",
                            hint="fill in their group in the sample sheet, or drop them")
    g = g.astype(str)
    names = sorted(g.unique())
    per = [[s for s, x in zip(samples, g, strict=True) if x == n] for n in names]
    small = [(n, len(p)) for n, p in zip(names, per, strict=True) if len(p) < MIN_GROUP_SIZE]
    if small:
        raise AnalysisError(f"group '{small[0][0]}' of column '{column}' has {small[0][1]} "
                            f"sample(s); MOFA+ groups need at least {MIN_GROUP_SIZE}",
                            hint="merge small groups in the sample sheet, or unset groups:")
    return names, per


def mofa_inputs(mdata: Any, groups: str | None = None
                ) -> tuple[list[list[np.ndarray]], list[str], list[str], list[str],
                           list[list[str]]]:
    """Per view and group, N_g x D matrices (NaN rows where a sample lacks the view), the
    likelihoods, views, group names and each group's samples."""
    names, per = sample_groups(mdata, groups)
    data, likelihoods, views = [], [], []
    for view, a in mdata.mod.items():
        data.append([view_matrix(mdata, view, p) for p in per])
        likelihoods.append(view_likelihood(a))
        views.append(view)
    return data, likelihoods, views, names, per


def view_likelihood(a: Any) -> str:
    """The MOFA+ likelihood normalisation chose for an omic's AnnData (Gaussian if none)."""
    return a.uns["omix"]["normalize"]["likelihood"] if "omix" in a.uns else "gaussian"


def model_feature_names(mdata: Any, views: list[str]) -> list[list[str]]:
    """Feature names for the model file: the MuData's var_names, ``<omic>:<feature>``, unique
    across views as mofapy2 requires (MOFA2's ``create_mofa`` would instead suffix ``_<view>``
    to names shared by views; one spelling everywhere is easier to join on)."""
    for v in views:
        omic_features(mdata, v)   # a MuData of an older version: one line saying so
    return [[str(f) for f in mdata.mod[v].var_names] for v in views]


def drop_inactive_factors(model: Any, min_r2: float) -> int:
    """Remove factors explaining < ``min_r2`` % in every view, after training.

    mofapy2's own ``dropR2`` drops factors during training, one random factor per iteration from
    the first iteration on; on planted data (tests/test_tl.py) it shut down a real factor that
    ends at 45 % variance explained.  Pruning the converged model, as MOFA2 advises for large
    data, keeps every factor with structure; the model file then holds only the kept factors.
    """
    if min_r2 <= 0:
        return 0
    # groups x views x factors; NaN (0 / 0) where a group lacks a view: nothing explained
    r2 = np.nan_to_num(np.stack(model.calculate_variance_explained())) * 100
    drop = np.nonzero((r2 < min_r2).all(axis=(0, 1)))[0]
    if len(drop) == model.dim["K"]:
        raise AnalysisError(f"no factor explains {min_r2}% of the variance in any view",
                            hint="lower integrate.min_r2, or check the normalised data")
    best = r2.max(axis=(0, 1))
    log.info("factor choice: %d factors fitted; largest variance explained in any view per "
             "factor (%%): %s; threshold integrate.min_r2 = %.3g%%", model.dim["K"],
             ", ".join(f"{b:.2f}" for b in best), min_r2)
    if len(drop):
        for node in model.nodes.values():
            node.removeFactors(drop)
        model.dim["K"] -= len(drop)
        log.info("dropped %d factor(s) below the threshold in every view: the data support %d "
                 "factors (raise integrate.factors if none was dropped)", len(drop),
                 model.dim["K"])
    else:
        log.info("no factor dropped: every fitted factor explains >= %.3g%% somewhere; the data "
                 "may support more than integrate.factors", min_r2)
    return len(drop)


def fit_mofa(mdata: Any, opts: MofaOptions, groups: str | None = None,
             progress: str | None = None) -> Any:
    """Train MOFA+ on all views of ``mdata`` (with the sample-sheet column ``groups`` as MOFA+
    groups, if given); return the trained mofapy2 entry point.  ``progress``: see
    :func:`train_mofa`."""
    data, likelihoods, views, names, samples = mofa_inputs(mdata, groups)
    n = mdata.n_obs
    if n <= opts.factors:
        raise AnalysisError(f"{n} samples for {opts.factors} factors",
                            hint="MOFA+ needs more samples than factors: lower "
                                 "integrate.factors")
    for view, lik, x in zip(views, likelihoods, data, strict=True):
        if lik not in LIKELIHOOD.values():
            raise AnalysisError(f"view {view}: unsupported likelihood {lik}")
        if sum(int(np.isnan(xg).all(axis=1).sum()) for xg in x) == n:
            raise AnalysisError(f"view {view} has no measured sample")
    ent = train_mofa(data, likelihoods, views, samples, model_feature_names(mdata, views), opts,
                     groups=names, owned=True, progress=progress)
    ent.omix_dropped = drop_inactive_factors(ent.model, opts.min_r2)
    return ent


def train_mofa(data: list[list[np.ndarray]], likelihoods: list[str], views: list[str],
               samples: list[list[str]], features: list[list[str]], opts: MofaOptions,
               groups: list[str] | None = None, owned: bool = False,
               progress: str | None = None) -> Any:
    """Build and train mofapy2's model on per-view, per-group N_g x D matrices (NaN = missing;
    ``samples``: each group's sample names; ``groups``: their names, one ``group1`` if None).

    With several groups each group is centred on its own means (mofapy2's ``center_groups``)
    and the factors get an ARD prior per group (``ard_factors``, MOFA+'s default for groups):
    a factor can be active in one site and silent in another.

    ``opts.engine == "fast"`` trains with :mod:`omix.engine` when the model allows it and says
    in the log why not otherwise; ``"mofapy2"`` is stock training.  ``ent.omix_engine`` records
    which one ran.  With the fast engine the data are prepared and the factors started by
    :mod:`omix.lean` (mofapy2's steps without its copies of the data; ``owned``: ``data`` is
    handed over and may be centred in place); stock training keeps mofapy2's own path.
    ``progress``: a label (e.g. ``MOFA+ restart 2``) under which training reports its iterations
    on the terminal (:func:`report_iterations`); None (nested CV's many fits) says nothing.
    """
    from mofapy2.run.entry_point import entry_point

    from . import engine

    if opts.engine not in ("fast", "mofapy2"):
        raise AnalysisError(f"integrate.engine {opts.engine!r} is unknown",
                            hint="use fast or mofapy2")
    stock32 = opts.float32 and opts.engine == "mofapy2"
    ent = entry_point()
    ent.set_data_options(scale_views=opts.scale_views, center_groups=True, use_float32=stock32)
    groups = groups or ["group1"]
    lean = opts.engine == "fast"
    if lean:
        from .lean import set_data_inplace

        set_data_inplace(ent, data, likelihoods, views, groups, samples, features,
                         owned=owned)
    else:
        ent.set_data_matrix(data, likelihoods=likelihoods, views_names=views,
                            groups_names=groups, samples_names=samples,
                            features_names=features)
    ent.set_model_options(factors=opts.factors, spikeslab_weights=opts.spikeslab_weights,
                          ard_weights=opts.ard_weights, ard_factors=len(groups) > 1)
    ent.set_train_options(iter=opts.iterations, convergence_mode=opts.convergence,
                          seed=opts.seed, verbose=False, quiet=True, startELBO=1, freqELBO=1,
                          dropR2=None, gpu_mode=False)
    if lean:
        from .lean import lean_build

        with lean_build(pca=opts.init != "power"):   # power_init replaces the start
            ent.build()
    else:
        ent.build()
    if opts.init == "power":   # the federated fit's initialisation (omix.federated)
        from .pca_init import power_init

        power_init(ent, opts.factors, opts.seed)
    elif opts.init != "mofapy2":
        raise AnalysisError(f"integrate.init {opts.init!r} is unknown",
                            hint="use mofapy2 or power")
    ent.omix_engine = "mofapy2"
    if opts.engine == "fast":
        reason = engine.unsupported(ent)
        if reason is None:
            engine.FastEngine(ent.model, float32=opts.float32).install()
            ent.omix_engine = "fast32" if opts.float32 else "fast"
        else:
            log.info("fast engine not used (%s): training with stock mofapy2", reason)
    log.info("MOFA+ training engine: %s", ent.omix_engine)
    if progress is not None:
        report_iterations(ent.model, progress, opts)
    ent.run()
    return ent


CONVERGENCE_PCT = {"fast": 0.0005, "medium": 0.00005, "slow": 0.000005}  # mofapy2's thresholds


def report_iterations(model: Any, label: str, opts: MofaOptions, every: float = 10.0) -> None:
    """Make ``model`` (mofapy2's BayesNet) print a progress line at most every ``every``
    seconds of training: the iteration, the ELBO's last relative change against the threshold
    at which mofapy2 stops (``BayesNet.assess_convergence``) and the time per iteration.  The
    ELBO is computed each iteration (freqELBO = 1), so its method is where iterations are
    counted; what it returns is unchanged."""
    import time

    from .errors import eta, progress

    inner = model.calculateELBO
    first: list[float] = []
    state = {"n": 0, "prev": float("nan"), "t0": time.monotonic(), "last": time.monotonic()}
    limit = CONVERGENCE_PCT.get(opts.convergence, float("nan"))

    def calculate_elbo(*nodes: Any) -> Any:
        elbo = inner(*nodes)
        if nodes:          # a partial ELBO, not an iteration's
            return elbo
        total = float(elbo["total"])
        if not first:
            first.append(total)
        change = 100 * abs((total - state["prev"]) / first[0]) if first[0] else float("nan")
        state["prev"] = total
        state["n"] += 1
        now = time.monotonic()
        if state["n"] > 1 and now - state["last"] >= every:
            state["last"] = now
            per = (now - state["t0"]) / state["n"]
            left = max(opts.iterations - state["n"], 0) * per
            progress(log, "%s: iteration %d, ELBO change %.2g %% (stops below %g %%), %.2f s "
                     "per iteration; at most %s more", label, state["n"] - 1, change, limit,
                     per, eta(left).lstrip("~"))
        return elbo

    model.calculateELBO = calculate_elbo


def save_mofa(mdata: Any, opts: MofaOptions, outfile: str | os.PathLike[str],
              groups: str | None = None, progress: str | None = None) -> None:
    """Fit MOFA+ and write mofapy2's model file (plus the engine used, as a root attribute)."""
    import h5py

    ent = fit_mofa(mdata, opts, groups, progress=progress)
    Path(outfile).parent.mkdir(parents=True, exist_ok=True)
    # mofapy2 replaces an existing file but prints a "Warning: ... already exists" in the log
    # (atomic_path hands over an empty temporary file): start from none
    Path(outfile).unlink(missing_ok=True)
    ent.save(str(outfile), save_data=opts.save_data)
    with h5py.File(outfile, "a") as f:
        # mofapy2 does not save the noise precisions (its Tau expectation is N x D); new
        # samples are projected with them (omix.predict.FrozenMofa), so keep one per feature
        # (one per group with MOFA+ groups: the frozen model, which places a new patient as
        # one more site, uses their average weighted by the groups' sizes)
        grp = f.create_group("omix_tau")
        n_g = np.bincount(np.asarray(ent.model.nodes["Y"].nodes[0].groups))
        for view, lik, node in zip(ent.data_opts["views_names"], ent.likelihoods,
                                   ent.model.nodes["Tau"].nodes, strict=True):
            if lik == "gaussian":  # non-Gaussian views have no noise precision to keep
                grp.create_dataset(view, data=np.average(
                    np.asarray(node.Q.getExpectation()), axis=0, weights=n_g))
        # nor E[w^2], which MOFA+'s factor update (and so the projection) uses
        # each group's and view's sum of squares (what mofapy2 divides by for its variance
        # explained), to pool the groups' variance explained into the whole cohort's
        y = ent.model.nodes["Y"].getExpectation()
        f.create_dataset("omix_ss", data=np.array([[float(np.square(ym[n_g_rows]).sum())
                                                    for ym in y] for n_g_rows in
                                                   _group_rows(ent.model)]))
        grp = f.create_group("omix_w2")
        for view, node in zip(ent.data_opts["views_names"], ent.model.nodes["W"].nodes,
                              strict=True):
            grp.create_dataset(view, data=np.asarray(node.getExpectations()["E2"]))
        # mofapy2 stores each iteration's wall-clock time: zeroed, so that the same data and
        # seed give the same file, byte for byte (the training log has the timings)
        if "training_stats" in f and "time" in f["training_stats"]:
            f["training_stats"]["time"][...] = 0.0
        f.attrs["omix_engine"] = ent.omix_engine
        f.attrs["omix_seed"] = opts.seed
        f.attrs["omix_factors_requested"] = opts.factors
        f.attrs["omix_factors_dropped"] = ent.omix_dropped
    log.info("MOFA+ (seed %d, engine %s): %d factors kept of %d requested", opts.seed,
             ent.omix_engine, ent.model.dim["K"], opts.factors)


def _group_rows(model: Any) -> list[np.ndarray]:
    groups = np.asarray(model.nodes["Y"].nodes[0].groups)
    return [groups == g for g in range(model.dim["G"])]


def write_samples_metadata(model: str | os.PathLike[str], obs: pd.DataFrame) -> None:
    """Add the clinical columns to the model file as ``samples_metadata/<group>/<column>``
    (one dataset per column, in the file's sample order: how mofapy2 writes metadata and what
    mofax and MOFA2's load_model read), so tools that open the model attach them."""
    import h5py

    with h5py.File(model, "a") as f:
        if "samples_metadata" in f:
            del f["samples_metadata"]
        root = f.create_group("samples_metadata")
        for group in f["samples"]:
            ids = [v.decode() if isinstance(v, bytes) else str(v) for v in f["samples"][group]]
            g = root.create_group(group)
            g.create_dataset("sample", data=np.array(ids, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            g.create_dataset("group", data=np.array([group] * len(ids), dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            meta = obs.reindex(ids)
            for col in meta.columns:
                if str(col) in ("sample", "group"):
                    continue
                v = meta[col]
                if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
                    g.create_dataset(str(col), data=v.to_numpy(dtype=float))
                else:
                    g.create_dataset(str(col), data=np.array(
                        ["" if pd.isna(x) else str(x) for x in v], dtype=object),
                        dtype=h5py.string_dtype("utf-8"))


def mofa_result(mdata: Any, model: str | os.PathLike[str]) -> MofaResult:
    """A model file's result with the MuData's feature names (``<omic>:<feature>``)."""
    res = read_mofa_model(model)
    views = list(mdata.mod)
    for v in views:
        res.weights[v].index = mdata.mod[v].var_names.copy()
    res.info.update({"n_samples": mdata.n_obs, "views": views})
    return res


def matched_correlation(a: pd.DataFrame, b: pd.DataFrame) -> pd.Series:
    """For each factor of ``a``: |r| with its one-to-one matched factor of ``b`` (Hungarian
    assignment on |r|); 0 where ``b`` has fewer factors and none is left to match."""
    from scipy.optimize import linear_sum_assignment

    b = b.loc[a.index]
    ka = a.shape[1]
    r = np.abs(np.nan_to_num(np.corrcoef(a.to_numpy().T, b.to_numpy().T)[:ka, ka:]))
    out = pd.Series(0.0, index=a.columns)
    i, j = linear_sum_assignment(-r)
    out.iloc[i] = r[i, j]
    return out


def choose_restart(results: list[MofaResult]) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """Best restart by final ELBO (ties: the first), a table of restarts and factor stability.

    Stability of each factor of the best model: its matched |r| with every other restart
    (mean and minimum); NaN with a single restart.
    """
    elbo = np.array([r.info["elbo"] for r in results])
    best = int(np.argmax(elbo))
    ref = results[best].factors
    matched = {i: matched_correlation(ref, r.factors) for i, r in enumerate(results)
               if i != best}
    table = pd.DataFrame({
        "restart": range(len(results)),
        "seed": [r.info.get("seed") for r in results],
        "engine": [r.info.get("engine") for r in results],
        "iterations": [r.info["iterations"] for r in results],
        "elbo": elbo,
        "factors": [r.factors.shape[1] for r in results],
        "best": [i == best for i in range(len(results))],
        "min_matched_r_to_best": [matched[i].min() if i in matched else 1.0
                                  for i in range(len(results))],
    })
    m = pd.DataFrame(matched, index=ref.columns)
    stab = pd.DataFrame({"factor": ref.columns,
                         "mean_matched_r": m.mean(axis=1).to_numpy() if matched else np.nan,
                         "min_matched_r": m.min(axis=1).to_numpy() if matched else np.nan,
                         "restarts_compared": len(matched)})
    return best, table, stab


def read_mofa_model(path: str | os.PathLike[str]) -> MofaResult:
    """Read factors, weights and variance explained from a mofapy2 hdf5 model file."""
    import h5py

    def txt(a: Any) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in a]

    with h5py.File(path, "r") as f:
        views = txt(f["views"]["views"][()])
        groups = txt(f["groups"]["groups"][()])
        per_group = [txt(f["samples"][g][()]) for g in groups]
        samples = [s for p in per_group for s in p]
        z = np.vstack([np.asarray(f["expectations"]["Z"][g][()]).T for g in groups])
        k = z.shape[1]
        names = [f"Factor{i + 1}" for i in range(k)]
        weights = {}
        for v in views:
            w = np.asarray(f["expectations"]["W"][v][()]).T
            weights[v] = pd.DataFrame(w, index=txt(f["features"][v][()]), columns=names)
        r2_g = np.stack([np.asarray(f["variance_explained"]["r2_per_factor"][g][()])
                         for g in groups])                         # G x M x K
        r2_total_g = np.stack([np.asarray(f["variance_explained"]["r2_total"][g][()])
                               for g in groups])                   # G x M
        if len(groups) == 1:
            r2, r2_total = r2_g[0], r2_total_g[0]
        else:  # pooled: 1 - sum of residuals / sum of squares = SS-weighted mean over groups
            ss = np.asarray(f["omix_ss"][()])   # G x M; 0 (and r2 NaN) where a group lacks a view
            r2 = np.einsum("gm,gmk->mk", ss, np.nan_to_num(r2_g)) / ss.sum(axis=0)[:, None]
            r2_total = np.einsum("gm,gm->m", ss, np.nan_to_num(r2_total_g)) / ss.sum(axis=0)
        elbo = np.asarray(f["training_stats"]["elbo"][()])
        elbo = elbo[~np.isnan(elbo)]
        attrs = {k[5:]: (v.item() if hasattr(v, "item") else str(v))
                 for k, v in f.attrs.items() if k.startswith("omix_")}
        likelihoods = dict(zip(views, txt(f["model_options"]["likelihoods"][()]), strict=True))
        tau = {v: np.asarray(f["omix_tau"][v][()]) if v in f.get("omix_tau", {}) else None
               for v in views}
        w2 = {v: np.asarray(f["omix_w2"][v][()]) if v in f.get("omix_w2", {}) else None
              for v in views}
    return MofaResult(
        likelihoods=likelihoods, tau=tau, weights2=w2,
        factors=pd.DataFrame(z, index=samples, columns=names),
        weights=weights,
        r2=pd.DataFrame(r2, index=views, columns=names),
        r2_total=pd.Series(r2_total, index=views),
        r2_groups={g: pd.DataFrame(r2_g[i], index=views, columns=names)
                   for i, g in enumerate(groups)},
        r2_total_groups={g: pd.Series(r2_total_g[i], index=views) for i, g in enumerate(groups)},
        sample_groups=pd.Series([g for g, p in zip(groups, per_group, strict=True) for _ in p],
                                index=samples),
        info={"iterations": len(elbo), "elbo": float(elbo[-1]) if len(elbo) else float("nan"),
              **attrs},
    )


def factor_table(mdata: Any) -> pd.DataFrame:
    """The factors stored in a MuData by :func:`attach_mofa`: samples x named factors."""
    if "X_mofa" not in mdata.obsm or "mofa" not in mdata.uns:
        raise AnalysisError("the MuData holds no MOFA+ factors", hint="re-run integrate")
    return pd.DataFrame(np.asarray(mdata.obsm["X_mofa"]), index=mdata.obs_names.copy(),
                        columns=list(mdata.uns["mofa"]["factors"]))


def attach_mofa(mdata: Any, res: MofaResult) -> None:
    """Store factors in ``obsm["X_mofa"]``, weights in ``varm["LFs"]`` (muon's names), R2 in uns."""
    z = res.factors.loc[list(mdata.obs_names)]
    mdata.obsm["X_mofa"] = z.to_numpy()
    for view, a in mdata.mod.items():
        a.obsm["X_mofa"] = z.loc[list(a.obs_names)].to_numpy()
        a.varm["LFs"] = res.weights[view].loc[list(a.var_names)].to_numpy()
    mdata.update()
    mdata.varm["LFs"] = np.vstack([res.weights[v].loc[list(mdata.mod[v].var_names)].to_numpy()
                                   for v in mdata.mod])
    mdata.uns["mofa"] = {
        "factors": list(res.factors.columns),
        "variance_explained": {v: res.r2.loc[v].to_numpy() for v in res.r2.index},
        "variance_explained_total": {v: float(res.r2_total[v]) for v in res.r2_total.index},
        "iterations": res.info.get("iterations"),
        "elbo": res.info.get("elbo"),
        "engine": str(res.info.get("engine", "unknown")),
        "restarts": int(res.info.get("restarts", 1)),
        "groups": {g: {v: r2.loc[v].to_numpy() for v in r2.index}
                   for g, r2 in res.r2_groups.items()} if len(res.r2_groups) > 1 else {},
    }


def variance_explained_table(res: MofaResult) -> pd.DataFrame:
    """Long table: view, factor, r2_percent; plus one row per view with factor == 'total'."""
    long = res.r2.rename_axis("view").reset_index().melt(id_vars="view", var_name="factor",
                                                           value_name="r2_percent")
    tot = pd.DataFrame({"view": res.r2_total.index, "factor": "total",
                        "r2_percent": res.r2_total.to_numpy()})
    return pd.concat([long, tot], ignore_index=True)


def weights_table(weights: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``mofa/weights.tsv``: ``feature, omic``, one column per factor, ``var_name``."""
    w = pd.concat([df.rename_axis("var_name").reset_index().assign(
        omic=v, feature=lambda d, v=v: d["var_name"].str.removeprefix(f"{v}:"))
        for v, df in weights.items()], ignore_index=True)
    factors = list(next(iter(weights.values())).columns)
    return w[["feature", "omic", *factors, "var_name"]]


def variance_explained_groups_table(res: MofaResult) -> pd.DataFrame:
    """The same per MOFA+ group (first column ``group``), then the pooled rows (group
    ``all``, those of :func:`variance_explained_table`)."""
    from .io import POOLED

    parts = [variance_explained_table(MofaResult(
        factors=res.factors, weights={}, r2=r2, r2_total=res.r2_total_groups[g])).assign(group=g)
        for g, r2 in res.r2_groups.items()] if len(res.r2_groups) > 1 else []
    parts.append(variance_explained_table(res).assign(group=POOLED))
    out = pd.concat(parts, ignore_index=True)
    return out[["group", "view", "factor", "r2_percent"]]



@dataclass
class FrozenMofa:
    """What is needed to place new samples on a trained MOFA+ model, and nothing else."""

    views: list[str]
    features: dict[str, pd.Index]
    means: dict[str, np.ndarray]
    scales: dict[str, float]
    weights: dict[str, np.ndarray]        # D x K, E[w]
    tau: dict[str, np.ndarray]            # D, noise precision per feature
    factors: list[str] = field(default_factory=list)
    weights2: dict[str, np.ndarray] = field(default_factory=dict)  # D x K, E[w^2]

    @classmethod
    def fit(cls, mdata: Any, opts: MofaOptions) -> tuple[FrozenMofa, pd.DataFrame]:
        """Fit MOFA+ on ``mdata``; return the frozen model and the training factors."""
        ent = fit_mofa(mdata, opts)
        model = ent.model
        z = model.nodes["Z"].getExpectation()
        w_all = model.nodes["W"].getExpectation()
        w2 = [np.asarray(n.getExpectations()["E2"]) for n in model.nodes["W"].nodes]
        tau = [np.asarray(t.Q.getExpectation())[0] if lik == "gaussian" else None
               for lik, t in zip(ent.likelihoods, model.nodes["Tau"].nodes, strict=True)]
        names = [f"Factor{k + 1}" for k in range(z.shape[1])]
        frozen = cls.from_parameters(mdata, list(ent.likelihoods), list(w_all), tau, names,
                                     scale_views=opts.scale_views, weights2=w2)
        return frozen, pd.DataFrame(z, index=list(mdata.obs_names), columns=names)

    @classmethod
    def from_parameters(cls, mdata: Any, likelihoods: list[str], weights: list[np.ndarray],
                        tau: list[np.ndarray | None], factors: list[str], *,
                        scale_views: bool = True,
                        weights2: list[np.ndarray | None] | None = None) -> FrozenMofa:
        """The frozen model from trained weights (E[w], and E[w^2] when known) and noise
        precisions (one per view, in ``mdata.mod`` order); centring and scaling are
        mofapy2's, computed on ``mdata``."""
        out = cls(views=[], features={}, means={}, scales={}, weights={}, tau={},
                  factors=list(factors))
        for m, v in enumerate(mdata.mod):
            if likelihoods[m] != "gaussian":
                continue  # Bernoulli/Poisson views do not enter the projection
            x = view_matrix(mdata, v, list(mdata.obs_names))
            mean = np.nanmean(x, axis=0)
            scale = float(np.nanstd(x - mean)) if scale_views else 1.0
            out.views.append(v)
            out.features[v] = omic_features(mdata, v)  # as in new cohorts' tables
            out.means[v] = mean
            out.scales[v] = scale if scale > 0 else 1.0
            out.weights[v] = np.asarray(weights[m])
            out.tau[v] = np.asarray(tau[m])
            if weights2 is not None and weights2[m] is not None:
                out.weights2[v] = np.asarray(weights2[m])
        return out

    def project(self, views: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Posterior mean of the factors of new samples given the frozen weights: the fixed
        point of MOFA+'s own factor update, so a projected discovery patient lands where the
        fit put it.

        MOFA+ updates each factor given the others (mean field), with precision
        1 + sum_d tau_d E[w_dk^2] and the other factors entering through E[w]; its fixed point
        solves A z = sum_m W_m' T_m y_m with A = sum_m W_m' T_m W_m (means) whose diagonal is
        1 + sum_d tau_d E[w_dk^2].  Using E[w]^2 on the diagonal instead (the joint-Gaussian
        formula) over-weights weak, uncertain factors (projected/fitted SD up to 1.3 on the
        synthetic cohort).  Sums run over each sample's observed features, y_m centred and
        scaled as in training; a feature absent from ``views`` is skipped.
        """
        samples = sorted(set().union(*(set(d.index) for d in views.values())), key=str)
        k = len(self.factors)
        prec = np.repeat(np.eye(k)[None, :, :], len(samples), axis=0)
        diag = np.ones((len(samples), k))
        rhs = np.zeros((len(samples), k))
        pos = {s: i for i, s in enumerate(samples)}
        for v in self.views:
            if v not in views:
                continue
            d = views[v].reindex(columns=self.features[v])
            y = (d.to_numpy(dtype=float) - self.means[v]) / self.scales[v]
            obs = ~np.isnan(y)
            w, t = self.weights[v], self.tau[v]
            w2 = self.weights2.get(v, w**2)
            rows = [pos[s] for s in d.index]
            for i, r in enumerate(rows):
                o = obs[i]
                if not o.any():
                    continue
                wt = w[o] * t[o, None]
                prec[r] += w[o].T @ wt
                diag[r] += t[o] @ w2[o]
                rhs[r] += wt.T @ y[i, o]
        idx = np.arange(k)
        prec[:, idx, idx] = diag
        z = np.stack([np.linalg.solve(prec[i], rhs[i]) for i in range(len(samples))])
        return pd.DataFrame(z, index=samples, columns=self.factors)
