"""Tools on the normalised cohort: MuData assembly, MOFA+ integration, ranking, clustering."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import FromConfig
from .errors import AnalysisError
from .pp import LIKELIHOOD

log = logging.getLogger("omix.tl")


# --------------------------------------------------------------------------------------------
# MuData
# --------------------------------------------------------------------------------------------
def clinical_obs(sheet: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """Sample-sheet columns for ``ids`` with h5-friendly dtypes (float or categorical)."""
    obs = sheet.loc[ids].copy()
    for col in obs.columns:
        if not pd.api.types.is_numeric_dtype(obs[col]):
            obs[col] = pd.Categorical(obs[col].astype(object).where(obs[col].notna(), None))
    obs.index = pd.Index(ids, name=None)
    return obs


def build_mudata(mods: dict[str, Any], sheet: pd.DataFrame) -> Any:
    """One MuData per cohort with the sheet's clinical columns in ``obs``.

    Each omic keeps sample-sheet order; the MuData's samples are the union in MuData's own
    (deterministic) order: the first omic's samples, then those new in the next, and so on.
    """
    import mudata as md

    mdata = md.MuData({k: mods[k] for k in mods})
    order = pd.Index(mdata.obs_names)
    clin = clinical_obs(sheet, order)
    for col in clin.columns:
        mdata.obs[col] = clin[col].to_numpy() if not isinstance(
            clin[col].dtype, pd.CategoricalDtype) else clin[col].values
    mdata.uns["omix"] = {"overlap": overlap_table(mods, order).to_dict(orient="list")}
    return mdata


def check_overlap(mods: dict[str, Any], warn_below: float = 0.5) -> None:
    """Omics must share samples to be integrated: none shared is an error; fewer than
    ``warn_below`` of the samples in every omic, or two omics sharing no sample, a warning on
    the terminal (MOFA+ then learns those omics' factors from disjoint patients)."""
    from .errors import warn_user

    if len(mods) < 2:
        return
    sets = {k: set(a.obs_names) for k, a in mods.items()}
    counts = pd.Series([s for v in sets.values() for s in v]).value_counts()
    sizes = ", ".join(f"{k} {len(v)}" for k, v in sets.items())
    if (counts >= 2).sum() == 0:
        raise AnalysisError(f"no sample is measured in more than one omic (samples per omic: "
                            f"{sizes})", hint="check that the tables use the same sample IDs "
                                              "(sample_id.regex or sample_id.map)")
    n_all = int((counts == len(mods)).sum())
    if n_all < warn_below * len(counts):
        warn_user(f"only {n_all} of {len(counts)} samples are measured in all {len(mods)} "
                  f"omics (samples per omic: {sizes}); factors of the other omics rest on "
                  "fewer patients")
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not sets[a] & sets[b]:
                warn_user(f"omics {a} and {b} share no sample: their factors cannot be "
                          "related through common patients")


def overlap_table(mods: dict[str, Any], order: pd.Index) -> pd.DataFrame:
    """Counts of samples per combination of omics (no sample IDs): the partial-overlap report."""
    pres = pd.DataFrame({k: order.isin(a.obs_names) for k, a in mods.items()}, index=order)
    combos = pres.apply(lambda r: "+".join(k for k in pres.columns if r[k]), axis=1)
    tab = combos.value_counts().rename_axis("omics").reset_index(name="n_samples")
    tab["n_omics"] = tab["omics"].str.count(r"\+") + 1
    tab = tab.sort_values(["n_omics", "n_samples", "omics"], ascending=[False, False, True])
    per = pd.DataFrame({"omics": [f"{k} (any)" for k in pres.columns],
                        "n_samples": pres.sum(axis=0).to_numpy(), "n_omics": 1})
    return pd.concat([tab, per], ignore_index=True)[["omics", "n_omics", "n_samples"]]


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


@dataclass
class MofaResult:
    factors: pd.DataFrame                    # samples x factors
    weights: dict[str, pd.DataFrame]          # view -> features x factors
    r2: pd.DataFrame                          # views x factors, percent
    r2_total: pd.Series                       # view -> percent
    info: dict[str, Any] = field(default_factory=dict)


def view_matrix(mdata: Any, view: str, samples: list[str]) -> np.ndarray:
    """One view's N x D matrix over ``samples``: NaN rows where a sample lacks the view."""
    a = mdata.mod[view]
    x = np.full((len(samples), a.n_vars), np.nan)
    idx = pd.Index(samples).get_indexer(a.obs_names)
    keep = idx >= 0
    x[idx[keep]] = np.asarray(a.X, dtype=np.float64)[keep]
    return x


def mofa_inputs(mdata: Any) -> tuple[list[list[np.ndarray]], list[str], list[str], list[str]]:
    """Per-view N x D matrices over all samples, NaN rows where a sample lacks the view."""
    samples = list(mdata.obs_names)
    data, likelihoods, views = [], [], []
    for view, a in mdata.mod.items():
        data.append([view_matrix(mdata, view, samples)])
        likelihoods.append(a.uns["omix"]["normalize"]["likelihood"]
                           if "omix" in a.uns else "gaussian")
        views.append(view)
    return data, likelihoods, views, samples


def model_feature_names(mdata: Any, views: list[str]) -> list[list[str]]:
    """Feature names for the model file: unique across views, as mofapy2 requires.

    Like MOFA2's ``create_mofa``, a name shared by several views gets the suffix ``_<view>``
    (in every view it occurs in); unique names stay as they are.
    """
    all_names = pd.Series([f for v in views for f in mdata.mod[v].var_names])
    shared = set(all_names[all_names.duplicated(keep=False)])
    return [[f"{f}_{v}" if f in shared else str(f) for f in mdata.mod[v].var_names]
            for v in views]


def drop_inactive_factors(model: Any, min_r2: float) -> int:
    """Remove factors explaining < ``min_r2`` % in every view, after training.

    mofapy2's own ``dropR2`` drops factors during training, one random factor per iteration from
    the first iteration on; on planted data (tests/test_tl.py) it shut down a real factor that
    ends at 45 % variance explained.  Pruning the converged model, as MOFA2 advises for large
    data, keeps every factor with structure; the model file then holds only the kept factors.
    """
    if min_r2 <= 0:
        return 0
    r2 = model.calculate_variance_explained()[0] * 100  # views x factors, one group
    drop = np.nonzero((r2 < min_r2).all(axis=0))[0]
    if len(drop) == model.dim["K"]:
        raise AnalysisError(f"no factor explains {min_r2}% of the variance in any view",
                            hint="lower integrate.min_r2, or check the normalised data")
    best = r2.max(axis=0)
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


def fit_mofa(mdata: Any, opts: MofaOptions) -> Any:
    """Train MOFA+ on all views of ``mdata``; return the trained mofapy2 entry point."""
    data, likelihoods, views, samples = mofa_inputs(mdata)
    n = len(samples)
    if n <= opts.factors:
        raise AnalysisError(f"{n} samples for {opts.factors} factors",
                            hint="MOFA+ needs more samples than factors: lower "
                                 "integrate.factors")
    for view, lik, x in zip(views, likelihoods, data, strict=True):
        if lik not in LIKELIHOOD.values():
            raise AnalysisError(f"view {view}: unsupported likelihood {lik}")
        if np.isnan(x[0]).all(axis=1).sum() == n:
            raise AnalysisError(f"view {view} has no measured sample")
    ent = train_mofa(data, likelihoods, views, samples, model_feature_names(mdata, views), opts)
    ent.omix_dropped = drop_inactive_factors(ent.model, opts.min_r2)
    return ent


def train_mofa(data: list[list[np.ndarray]], likelihoods: list[str], views: list[str],
               samples: list[str], features: list[list[str]], opts: MofaOptions) -> Any:
    """Build and train mofapy2's model on per-view N x D matrices (NaN = missing).

    ``opts.engine == "fast"`` trains with :mod:`omix.engine` when the model allows it and says
    in the log why not otherwise; ``"mofapy2"`` is stock training.  ``ent.omix_engine`` records
    which one ran.
    """
    from mofapy2.run.entry_point import entry_point

    from . import engine

    if opts.engine not in ("fast", "mofapy2"):
        raise AnalysisError(f"integrate.engine {opts.engine!r} is unknown",
                            hint="use fast or mofapy2")
    stock32 = opts.float32 and opts.engine == "mofapy2"
    ent = entry_point()
    ent.set_data_options(scale_views=opts.scale_views, center_groups=True, use_float32=stock32)
    ent.set_data_matrix(data, likelihoods=likelihoods, views_names=views,
                        groups_names=["group1"], samples_names=[samples],
                        features_names=features)
    ent.set_model_options(factors=opts.factors, spikeslab_weights=opts.spikeslab_weights,
                          ard_weights=opts.ard_weights, ard_factors=False)
    ent.set_train_options(iter=opts.iterations, convergence_mode=opts.convergence,
                          seed=opts.seed, verbose=False, quiet=True, startELBO=1, freqELBO=1,
                          dropR2=None, gpu_mode=False)
    ent.build()
    ent.omix_engine = "mofapy2"
    if opts.engine == "fast":
        reason = engine.unsupported(ent)
        if reason is None:
            engine.FastEngine(ent.model, float32=opts.float32).install()
            ent.omix_engine = "fast32" if opts.float32 else "fast"
        else:
            log.info("fast engine not used (%s): training with stock mofapy2", reason)
    log.info("MOFA+ training engine: %s", ent.omix_engine)
    ent.run()
    return ent


def run_mofa(mdata: Any, opts: MofaOptions, outfile: str | os.PathLike[str]) -> MofaResult:
    """Fit MOFA+ on all views of ``mdata``; write the model file to ``outfile``; read it back."""
    save_mofa(mdata, opts, outfile)
    return mofa_result(mdata, outfile)


def save_mofa(mdata: Any, opts: MofaOptions, outfile: str | os.PathLike[str]) -> None:
    """Fit MOFA+ and write mofapy2's model file (plus the engine used, as a root attribute)."""
    import h5py

    ent = fit_mofa(mdata, opts)
    Path(outfile).parent.mkdir(parents=True, exist_ok=True)
    ent.save(str(outfile), save_data=opts.save_data)
    with h5py.File(outfile, "a") as f:
        # mofapy2 does not save the noise precisions (its Tau expectation is N x D); new
        # samples are projected with them (omix.predict.FrozenMofa), so keep one per feature
        grp = f.create_group("omix_tau")
        for view, lik, node in zip(ent.data_opts["views_names"], ent.likelihoods,
                                   ent.model.nodes["Tau"].nodes, strict=True):
            if lik == "gaussian":  # non-Gaussian views have no noise precision to keep
                grp.create_dataset(view, data=np.asarray(node.Q.getExpectation())[0])
        # nor E[w^2], which MOFA+'s factor update (and so the projection) uses
        grp = f.create_group("omix_w2")
        for view, node in zip(ent.data_opts["views_names"], ent.model.nodes["W"].nodes,
                              strict=True):
            grp.create_dataset(view, data=np.asarray(node.getExpectations()["E2"]))
        f.attrs["omix_engine"] = ent.omix_engine
        f.attrs["omix_seed"] = opts.seed
        f.attrs["omix_factors_requested"] = opts.factors
        f.attrs["omix_factors_dropped"] = ent.omix_dropped
    log.info("MOFA+ (seed %d, engine %s): %d factors kept of %d requested", opts.seed,
             ent.omix_engine, ent.model.dim["K"], opts.factors)


def mofa_result(mdata: Any, model: str | os.PathLike[str]) -> MofaResult:
    """A model file's result with the AnnData's feature names (the file may add _view)."""
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
        group = txt(f["groups"]["groups"][()])[0]
        samples = txt(f["samples"][group][()])
        z = np.asarray(f["expectations"]["Z"][group][()]).T
        k = z.shape[1]
        names = [f"Factor{i + 1}" for i in range(k)]
        weights = {}
        for v in views:
            w = np.asarray(f["expectations"]["W"][v][()]).T
            weights[v] = pd.DataFrame(w, index=txt(f["features"][v][()]), columns=names)
        r2 = np.asarray(f["variance_explained"]["r2_per_factor"][group][()])
        r2_total = np.asarray(f["variance_explained"]["r2_total"][group][()])
        elbo = np.asarray(f["training_stats"]["elbo"][()])
        elbo = elbo[~np.isnan(elbo)]
        attrs = {k[5:]: (v.item() if hasattr(v, "item") else str(v))
                 for k, v in f.attrs.items() if k.startswith("omix_")}
    return MofaResult(
        factors=pd.DataFrame(z, index=samples, columns=names),
        weights=weights,
        r2=pd.DataFrame(r2, index=views, columns=names),
        r2_total=pd.Series(r2_total, index=views),
        info={"iterations": len(elbo), "elbo": float(elbo[-1]) if len(elbo) else float("nan"),
              **attrs},
    )


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
    }


def variance_explained_table(res: MofaResult) -> pd.DataFrame:
    """Long table: view, factor, r2_percent; plus one row per view with factor == 'total'."""
    long = res.r2.rename_axis("view").reset_index().melt(id_vars="view", var_name="factor",
                                                           value_name="r2_percent")
    tot = pd.DataFrame({"view": res.r2_total.index, "factor": "total",
                        "r2_percent": res.r2_total.to_numpy()})
    return pd.concat([long, tot], ignore_index=True)


# --------------------------------------------------------------------------------------------
# factor-outcome association and biomarker ranking
# --------------------------------------------------------------------------------------------
def is_categorical(y: pd.Series) -> bool:
    """Classes or numbers, by the one rule of :mod:`omix.outcome` (prediction uses it too)."""
    from .outcome import is_classification

    return is_classification(y)


def factor_outcome_association(factors: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    """Each factor against the outcome: Kruskal-Wallis (classes) or Spearman (numeric).

    ``effect`` is eta^2 from H, (H - g + 1) / (n - g), for classes and rho^2 for numbers, in
    [0, 1]; ``q`` is Benjamini-Hochberg across factors (statsmodels).
    """
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    y = y.reindex(factors.index)
    ok = y.notna()
    f, yy = factors.loc[ok], y.loc[ok]
    rows = []
    categorical = is_categorical(yy)
    for k in factors.columns:
        if categorical:
            groups = [f.loc[yy == g, k].to_numpy() for g in sorted(yy.unique(), key=str)]
            groups = [g for g in groups if len(g) > 0]
            if len(groups) < 2:
                stat, p, eff = np.nan, 1.0, 0.0
            else:
                stat, p = stats.kruskal(*groups)
                n, g = sum(map(len, groups)), len(groups)
                eff = float(np.clip((stat - g + 1) / (n - g), 0, 1))
            test = "kruskal"
        else:
            stat, p = stats.spearmanr(f[k], yy.astype(float))
            eff = float(stat**2)
            test = "spearman"
        rows.append({"factor": k, "test": test, "statistic": float(stat), "p": float(p),
                     "effect": eff, "n": int(ok.sum())})
    out = pd.DataFrame(rows)
    out["q"] = multipletests(out["p"].fillna(1.0), method="fdr_bh")[1]
    return out


def rank_features(res: MofaResult, y: pd.Series | None = None) -> tuple[pd.DataFrame,
                                                                         pd.DataFrame]:
    """Rank every feature of every view by its weight on the factors that matter.

    score = sum_k |w_dk| / max_d |w_dk| * R2_mk / 100 * a_k, with a_k the factor's effect size
    against the outcome (1 without an outcome).  Returns (ranked features, factor table).
    """
    factors = list(res.factors.columns)
    if y is not None:
        assoc = factor_outcome_association(res.factors, y)
        relevance = assoc.set_index("factor")["effect"]
    else:
        assoc = pd.DataFrame({"factor": factors})
        relevance = pd.Series(1.0, index=factors)
    ftab = assoc.copy()
    for v in res.r2.index:
        ftab[f"r2_{v}"] = res.r2.loc[v, factors].to_numpy()
    frames = []
    for view, w in res.weights.items():
        absw = w.abs()
        scale = absw.max(axis=0).replace(0, np.nan)
        wt = (absw / scale).fillna(0.0)
        contrib = wt * (res.r2.loc[view, factors] / 100.0) * relevance[factors]
        top = contrib.to_numpy().argmax(axis=1)
        df = pd.DataFrame({
            "feature": w.index.astype(str),
            "omic": view,
            "score": contrib.sum(axis=1).to_numpy(),
            "top_factor": [factors[i] for i in top],
            "weight": w.to_numpy()[np.arange(len(w)), top],
            "scaled_weight": wt.to_numpy()[np.arange(len(w)), top],
            "factor_r2": res.r2.loc[view, factors].to_numpy()[top],
        })
        if y is not None:
            q = assoc.set_index("factor")["q"]
            df["factor_outcome_effect"] = relevance[factors].to_numpy()[top]
            df["factor_outcome_q"] = q[factors].to_numpy()[top]
        frames.append(df)
    ranked = pd.concat(frames, ignore_index=True)
    ranked = ranked.sort_values(["score", "omic", "feature"], ascending=[False, True, True],
                                kind="mergesort").reset_index(drop=True)
    ranked.insert(2, "rank", np.arange(1, len(ranked) + 1))
    ranked["rank_in_omic"] = ranked.groupby("omic").cumcount() + 1
    return ranked, ftab


# --------------------------------------------------------------------------------------------
# clustering
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterOptions(FromConfig):
    n_neighbors: int = 15
    resolutions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0)
    min_cluster_size: int = 5
    seed: int = 0
    n_clusters: int | None = None   # asked for: the admissible resolution closest to it


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster labels C1, C2, ... by decreasing size (ties: first appearance)."""
    s = pd.Series(labels)
    first = {v: i for i, v in reversed(list(enumerate(s)))}
    order = sorted(s.unique(), key=lambda v: (-int((s == v).sum()), first[v]))
    names = {v: f"C{i + 1}" for i, v in enumerate(order)}
    return s.map(names).to_numpy()


def cluster_factors(z: pd.DataFrame, opts: ClusterOptions, y: pd.Series | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Leiden on the kNN graph of the factors; resolution chosen by silhouette.

    Returns (clusters: sample_id, cluster), the selection table (one row per resolution, with
    each partition's agreement with the chosen one) and the UMAP embedding (n x 2).  The kept
    resolution maximises the silhouette on ``z`` among partitions with >= 2 clusters all of size
    >= min_cluster_size; ties go to the lower resolution.  With ``n_clusters`` set, the
    admissible partition closest to that many clusters is kept (silhouette breaks ties).  If
    none qualifies, every sample is put in one cluster and the table says so.  With ``y``
    (classes), each partition's ARI with it is added (``ari_outcome``).
    """
    import anndata as ad
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    n = z.shape[0]
    if n < 3:
        raise AnalysisError(f"{n} samples cannot be clustered", hint="at least 3 are needed")
    a = ad.AnnData(X=np.zeros((n, 1)))
    a.obs_names = z.index.astype(str)
    a.obsm["X_mofa"] = z.to_numpy()
    k = int(min(opts.n_neighbors, n - 1))
    sc.pp.neighbors(a, use_rep="X_mofa", n_neighbors=k, random_state=opts.seed)
    rows, best, best_labels, best_r = [], None, None, None
    labels_by_r: dict[float, np.ndarray] = {}
    for r in opts.resolutions:
        sc.tl.leiden(a, resolution=r, key_added="leiden", random_state=opts.seed,
                     flavor="igraph", n_iterations=2, directed=False)
        lab = a.obs["leiden"].astype(str).to_numpy()
        sizes = pd.Series(lab).value_counts()
        nc = len(sizes)
        sil = float(silhouette_score(z.to_numpy(), lab)) if 1 < nc < n else float("nan")
        ok = nc >= 2 and int(sizes.min()) >= opts.min_cluster_size
        rows.append({"resolution": r, "n_clusters": nc, "min_size": int(sizes.min()),
                     "silhouette": sil, "admissible": ok})
        # by silhouette, or (n_clusters asked for) by distance to that number, then silhouette
        key = (sil,) if opts.n_clusters is None else (-abs(nc - opts.n_clusters), sil)
        if ok and (best is None or key > tuple(b + 1e-12 for b in best)):
            best, best_labels, best_r = key, lab, r
        labels_by_r[r] = lab
    table = pd.DataFrame(rows)
    table.insert(0, "method", "leiden")
    if best_labels is None:
        log.warning("no resolution gives >= 2 clusters of >= %d samples; one cluster kept",
                    opts.min_cluster_size)
        best_labels = np.array(["0"] * n)
        table["chosen"] = False
    else:
        table["chosen"] = table["resolution"] == best_r
    table["ari_to_chosen"] = [adjusted_rand_score(best_labels, labels_by_r[r])
                              for r in table["resolution"]]
    if y is not None:  # classes: how each partition matches them
        table["ari_outcome"] = [ari_known(y.reindex(z.index), labels_by_r[r])
                                for r in table["resolution"]]
    sc.tl.umap(a, random_state=opts.seed)
    clusters = pd.DataFrame({"sample_id": z.index.astype(str),
                             "cluster": relabel_by_size(best_labels)})
    return clusters, table, np.asarray(a.obsm["X_umap"])


def ari_known(y: pd.Series, labels: np.ndarray) -> float:
    """Adjusted Rand index of ``labels`` with the classes ``y`` over the samples where y is
    known."""
    from sklearn.metrics import adjusted_rand_score

    known = y.notna().to_numpy()
    return float(adjusted_rand_score(y.astype(str).to_numpy()[known],
                                     np.asarray(labels)[known]))


def pca_kmeans_baseline(x: pd.DataFrame, n_components: int, ks: list[int], seed: int = 0
                        ) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """The plain baseline a reviewer would run: median-impute and standardise all features,
    PCA to ``n_components``, k-means for each k.  Returns (table: method, k, n_clusters,
    min_size; labels per k)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    xs = StandardScaler().fit_transform(
        SimpleImputer(strategy="median", keep_empty_features=True).fit_transform(x.to_numpy()))
    pcs = PCA(n_components=min(n_components, *xs.shape), random_state=seed).fit_transform(xs)
    rows, labels = [], {}
    for k in sorted(set(ks)):
        if not 2 <= k < len(x):
            continue
        lab = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(pcs).astype(str)
        labels[k] = lab
        rows.append({"method": "pca_kmeans", "k": k, "n_clusters": k,
                     "min_size": int(pd.Series(lab).value_counts().min())})
    return pd.DataFrame(rows), labels


def compare_partitions(clusters: pd.Series, y: pd.Series) -> pd.DataFrame:
    """ARI and NMI of the clusters against a categorical outcome (samples with both)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    both = pd.concat([clusters.rename("c"), y.rename("y")], axis=1, join="inner").dropna()
    c, yy = both["c"].astype(str), both["y"].astype(str)
    return pd.DataFrame({
        "metric": ["ARI", "NMI"],
        "value": [adjusted_rand_score(yy, c), normalized_mutual_info_score(yy, c)],
        "n_samples": [len(both)] * 2,
        "n_clusters": [c.nunique()] * 2,
        "n_classes": [yy.nunique()] * 2,
    })
