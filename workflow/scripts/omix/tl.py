"""Tools on the normalised cohort: MuData assembly, ranking, clustering (MOFA+ is omix.mofa)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import AnalysisError, Stopwatch
from .mofa import MofaResult
from .options import FromConfig

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
    Features are named ``<omic>:<feature>`` (:func:`omix.io.var_key`; the AnnData in ``mods``
    are renamed in place), so that the global var_names are unique: the same gene measured in
    two omics is two features.
    """
    from .io import mudata, var_key

    for k, a in mods.items():
        a.var_names = pd.Index([var_key(k, f) for f in a.var_names])
    mdata = mudata().MuData({k: mods[k] for k in mods})
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
# factor-outcome association and biomarker ranking
# --------------------------------------------------------------------------------------------
def is_categorical(y: pd.Series, kind: str = "auto") -> bool:
    """Classes or numbers: the config's resolved ``kind`` (:func:`omix.outcome.resolve`)."""
    from .outcome import resolve

    return resolve(kind, y) == "classes"


def factor_outcome_association(factors: pd.DataFrame, y: pd.Series, kind: str = "auto"
                               ) -> pd.DataFrame:
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
    categorical = is_categorical(yy, kind)
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


def rank_features(res: MofaResult, y: pd.Series | None = None, kind: str = "auto"
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank every feature of every view by its weight on the factors that matter.

    score = sum_k |w_dk| / max_d |w_dk| * R2_mk / 100 * a_k, with a_k the factor's effect size
    against the outcome (1 without an outcome).  Returns (ranked features, factor table).
    """
    factors = list(res.factors.columns)
    if y is not None:
        assoc = factor_outcome_association(res.factors, y, kind)
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
        names = pd.Index(w.index.astype(str))
        df = pd.DataFrame({
            "feature": names.str.removeprefix(f"{view}:"),
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
        df["var_name"] = names  # <omic>:<feature>, as in the MuData and the model file
        frames.append(df)
    ranked = pd.concat(frames, ignore_index=True)
    ranked = ranked.sort_values(["score", "omic", "feature"], ascending=[False, True, True],
                                kind="mergesort").reset_index(drop=True)
    ranked.insert(2, "rank", np.arange(1, len(ranked) + 1))
    ranked["rank_in_omic"] = ranked.groupby("omic").cumcount() + 1
    return ranked, ftab


def consensus_ranking(ranked: pd.DataFrame, stability: pd.DataFrame | None,
                      rf: pd.DataFrame | None) -> pd.DataFrame:
    """Add the stability-selection and random-forest evidence to the MOFA+ ranking and a
    ``consensus_rank``: the mean of the MOFA-score rank, the selection-probability rank and
    the forest-importance rank (those available); features with a forest drop <= 0 share the
    rank after the positive ones (no evidence)."""
    ranked = ranked.copy()
    key = ranked["var_name"]
    ranks = [ranked["rank"]]
    if stability is not None:
        summ = stability.set_index("feature")
        ranked["selection_probability"] = summ["selection_probability"].reindex(key).to_numpy()
        ranked["q_value"] = summ["q_value"].reindex(key).to_numpy()
        log.info("stability selection: %d feature(s) with q < 0.05",
                 int((ranked["q_value"] < 0.05).sum()))
        ranks.append(ranked["selection_probability"].rank(ascending=False, method="min"))
    if rf is not None:
        r = rf.set_index("feature")
        for col in ("rf_importance", "rf_importance_sd"):
            ranked[col] = r[col].reindex(key).to_numpy()
        ranks.append(ranked["rf_importance"].clip(lower=0).rank(ascending=False, method="min"))
    if len(ranks) > 1:
        ranked["consensus_rank"] = (sum(ranks) / len(ranks)).rank(method="first").astype(int)
    return ranked[[c for c in ranked.columns if c != "var_name"] + ["var_name"]]  # last


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


def relabel_by_size(labels: np.ndarray, avoid: Iterable[object] = ()) -> np.ndarray:
    """Cluster labels K1, K2, ... by decreasing size (ties: first appearance).

    "K" rather than "C": outcome classes are often called C1, C2 (TCGA's clusters of clusters,
    e.g. ACC's C1A/C1B), and a clinician must not read a data-driven cluster as a known class.
    If a label would still equal one of ``avoid`` (the outcome's classes), every label gets the
    prefix ``MOFA-`` instead.
    """
    s = pd.Series(labels)
    first = {v: i for i, v in reversed(list(enumerate(s)))}
    order = sorted(s.unique(), key=lambda v: (-int((s == v).sum()), first[v]))
    taken = {str(a) for a in avoid}
    prefix = "MOFA-K" if any(f"K{i + 1}" in taken for i in range(len(order))) else "K"
    names = {v: f"{prefix}{i + 1}" for i, v in enumerate(order)}
    return s.map(names).to_numpy()


def cache_umap_kernels() -> int:
    """Let numba keep umap-learn's compiled kernels on disk (returns how many it now caches).

    umap-learn compiles its kNN-graph and layout kernels (numba, several with
    ``parallel=True``) in every new process and caches only one of them: on the bundled cohort
    that compilation was 9 of the cluster rule's 11 s (scanpy's neighbors 4.0 s -> 0.04 s and
    its UMAP 0.67 s -> 0.10 s once cached; the same embedding).  Numba writes the cache next to
    the package (its ``__pycache__``) or, if that is read-only, in the user's cache folder;
    where neither can be written the kernels stay uncached and are compiled as before.
    """
    import umap.layouts
    import umap.umap_
    import umap.utils
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    n = 0
    for mod in (umap.umap_, umap.layouts, umap.utils):
        for f in vars(mod).values():
            if isinstance(f, CPUDispatcher) and isinstance(f._cache, NullCache):
                try:
                    f.enable_caching()
                except RuntimeError:   # numba: "cannot cache function ...: no locator"
                    continue
                n += 1
    return n


def silhouettes(z: np.ndarray, labelings: Sequence[np.ndarray], block: int = 1024
                ) -> list[float]:
    """The mean silhouette (Euclidean) of each labelling of the rows of ``z``, as scikit-learn's
    ``silhouette_score`` defines it (a sample alone in its cluster scores 0); NaN for a
    labelling with fewer than 2 or more than n - 1 clusters, where that function refuses.

    Written out because scikit-learn computes the n x n distances again for every labelling,
    and the cluster rule scores 18-25 of them: 6.6 s of its 19.5 s at 5,000 patients.  Here
    one pass over blocks of the distance matrix (memory: ``block`` x n) multiplies each block
    with the one-hot matrices of all labellings at once; the tests compare with scikit-learn.
    """
    from sklearn.metrics.pairwise import euclidean_distances

    x = np.asarray(z, dtype=float)
    n = len(x)
    codes, sizes, valid = [], [], []
    for lab in labelings:
        _, c = np.unique(np.asarray(lab).astype(str), return_inverse=True)
        codes.append(c)
        sizes.append(np.bincount(c))
        valid.append(1 < len(sizes[-1]) < n)
    # a labelling scored as NaN takes no columns (n singletons would take n)
    offsets = np.cumsum([0, *(len(s) if ok else 0 for s, ok in zip(sizes, valid, strict=True))])
    onehot = np.zeros((n, int(offsets[-1])))
    for j, c in enumerate(codes):
        if valid[j]:
            onehot[np.arange(n), offsets[j] + c] = 1.0
    sums = np.empty_like(onehot)          # each sample's summed distance to each cluster
    sq = np.einsum("ij,ij->i", x, x)
    for lo in range(0, n, block):
        d = euclidean_distances(x[lo:lo + block], x, X_norm_squared=sq[lo:lo + block, None],
                                Y_norm_squared=sq[None, :])
        d[np.arange(len(d)), np.arange(lo, lo + len(d))] = 0.0   # as scikit-learn: d(i, i) = 0
        sums[lo:lo + block] = d @ onehot
    out = []
    for j, (c, size) in enumerate(zip(codes, sizes, strict=True)):
        if not valid[j]:
            out.append(float("nan"))
            continue
        mean = sums[:, offsets[j]:offsets[j + 1]] / size[None, :]
        own = np.arange(n), c
        a = sums[:, offsets[j]:offsets[j + 1]][own] / np.maximum(size[c] - 1, 1)
        mean[own] = np.inf
        b = mean.min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sil = np.nan_to_num((b - a) / np.maximum(a, b))
        sil[size[c] == 1] = 0.0
        out.append(float(sil.mean()))
    return out


def cluster_factors(z: pd.DataFrame, opts: ClusterOptions, y: pd.Series | None = None,
                    avoid: Iterable[object] = (), watch: Stopwatch | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Leiden on the kNN graph of the factors; resolution chosen by silhouette.

    Returns (clusters: sample_id, cluster), the selection table (one row per resolution, with
    each partition's agreement with the chosen one) and the UMAP embedding (n x 2).  The kept
    resolution maximises the silhouette on ``z`` among partitions with >= 2 clusters all of size
    >= min_cluster_size; ties go to the lower resolution.  With ``n_clusters`` set, the
    admissible partition closest to that many clusters is kept (silhouette breaks ties).  If
    none qualifies, every sample is put in one cluster and the table says so.  With ``y``
    (classes), each partition's ARI with it is added (``ari_outcome``).  Cluster names
    (:func:`relabel_by_size`) never equal a value of ``y`` or of ``avoid``.  ``watch`` hears
    of each of its three phases.
    """
    import anndata as ad
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    n = z.shape[0]
    if n < 3:
        raise AnalysisError(f"{n} samples cannot be clustered", hint="at least 3 are needed")
    a = ad.AnnData(X=np.zeros((n, 1)))
    a.obs_names = z.index.astype(str)
    a.obsm["X_mofa"] = z.to_numpy()
    k = int(min(opts.n_neighbors, n - 1))
    cache_umap_kernels()
    sc.pp.neighbors(a, use_rep="X_mofa", n_neighbors=k, random_state=opts.seed)
    if watch is not None:   # numba compiles umap-learn's kernels here on a first run
        watch.done(f"kNN graph of {n:,} patients",
                   f"Leiden at {len(opts.resolutions)} resolutions")
    rows, best, best_labels, best_r = [], None, None, None
    labs = []
    for r in opts.resolutions:
        sc.tl.leiden(a, resolution=r, key_added="leiden", random_state=opts.seed,
                     flavor="igraph", n_iterations=2, directed=False)
        labs.append(a.obs["leiden"].astype(str).to_numpy())
    labels_by_r = dict(zip(opts.resolutions, labs, strict=True))
    for r, lab, sil in zip(opts.resolutions, labs, silhouettes(z.to_numpy(), labs),
                           strict=True):
        sizes = pd.Series(lab).value_counts()
        nc = len(sizes)
        ok = nc >= 2 and int(sizes.min()) >= opts.min_cluster_size
        rows.append({"resolution": r, "n_clusters": nc, "min_size": int(sizes.min()),
                     "silhouette": sil, "admissible": ok})
        # by silhouette, or (n_clusters asked for) by distance to that number, then silhouette
        key = (sil,) if opts.n_clusters is None else (-abs(nc - opts.n_clusters), sil)
        if ok and (best is None or key > tuple(b + 1e-12 for b in best)):
            best, best_labels, best_r = key, lab, r
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
    if watch is not None:
        watch.done("Leiden and silhouettes", "UMAP embedding")
    sc.tl.umap(a, random_state=opts.seed)
    if watch is not None:
        watch.done("UMAP embedding", "PCA + k-means baseline on all features")
    clusters = pd.DataFrame({"sample_id": z.index.astype(str),
                             "cluster": relabel_by_size(
                                 best_labels, [*avoid, *([] if y is None else y.dropna())])})
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
    from sklearn.preprocessing import StandardScaler

    from .impute import MedianImputer

    xs = StandardScaler().fit_transform(
        MedianImputer().fit_transform(x.to_numpy()))
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
