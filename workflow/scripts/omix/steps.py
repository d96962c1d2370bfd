"""One function per rule: read inputs, call the library, write outputs atomically.

Rule scripts call exactly one of these with values from ``snakemake.input/output/params``; tests
call them directly with temporary paths.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import io, pl, predict as pr, privacy, stats, tl
from .errors import ConfigError
from .ingest import ingest_omic
from .pp import OmicOptions, normalize_omic

log = logging.getLogger("omix.steps")
PathLike = str | os.PathLike[str]


def _pseudonyms(ids: list[str], privacy_cfg: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not privacy_cfg or not privacy_cfg.get("pseudonymize"):
        return None
    key = privacy.load_key(privacy_cfg.get("key_env"), privacy_cfg.get("key_file"))
    return privacy.pseudonymize_ids(ids, key)


def samples(sheet_in: PathLike, out_tsv: PathLike, mapping_out: PathLike | None, *,
            privacy_cfg: Mapping[str, Any] | None = None) -> None:
    """The validated sample sheet every later step reads (IDs pseudonymised if asked)."""
    sheet = io.read_sample_sheet(sheet_in)
    mapping = _pseudonyms(list(sheet.index), privacy_cfg)
    if mapping is not None:
        if mapping_out is None:
            raise ConfigError("pseudonymize is true but no mapping_file is set",
                              where="privacy.mapping_file")
        io.write_tsv(privacy.mapping_table(mapping), mapping_out)
        sheet.index = pd.Index([mapping[i] for i in sheet.index], name="sample_id")
        log.info("sample IDs pseudonymised (%d samples)", len(sheet))
    io.write_tsv(sheet.reset_index(), out_tsv, float_format=None)


def ingest(table: PathLike, samples: PathLike, out_h5ad: PathLike, *, omic: str,
           omic_cfg: Mapping[str, Any], sample_id_cfg: Mapping[str, Any],
           privacy_cfg: Mapping[str, Any] | None = None) -> None:
    """``samples`` is the user's sheet: table labels are checked against its real IDs."""
    sheet = io.read_sample_sheet(samples)
    adata = ingest_omic(table, kind=omic_cfg["kind"], sample_ids=list(sheet.index),
                        layout=omic_cfg.get("layout", "features_x_samples"),
                        fmt=omic_cfg.get("format", "auto"), regex=sample_id_cfg.get("regex"),
                        map_file=sample_id_cfg.get("map"), name=omic)
    mapping = _pseudonyms(list(sheet.index), privacy_cfg)
    if mapping is not None:
        adata.obs_names = pd.Index([mapping[i] for i in adata.obs_names])
    io.write_h5ad(adata, out_h5ad)


def normalize(raw_h5ad: PathLike, samples: PathLike, out_h5ad: PathLike, qc_stem: PathLike, *,
              omic_cfg: Mapping[str, Any], batch: str | None, seed: int = 0) -> None:
    raw = io.read_h5ad(raw_h5ad)
    sheet = io.read_sample_sheet(samples)
    norm = normalize_omic(raw, OmicOptions.from_config(dict(omic_cfg)),
                          batch=sheet[batch] if batch else None, seed=seed)
    io.write_h5ad(norm, out_h5ad)
    pl.qc_omic(raw, norm, qc_stem)


def mudata(omic_h5ads: Mapping[str, PathLike], samples: PathLike, out_h5mu: PathLike,
           overlap_tsv: PathLike) -> None:
    sheet = io.read_sample_sheet(samples)
    mods = {name: io.read_h5ad(p) for name, p in omic_h5ads.items()}
    mdata = tl.build_mudata(mods, sheet)
    table = tl.overlap_table(mods, pd.Index(mdata.obs_names))
    n_all = int(table.loc[table["n_omics"] == len(mods), "n_samples"].sum())
    log.info("%d samples in at least one omic, %d in all %d omics", mdata.n_obs, n_all,
             len(mods))
    io.write_tsv(table, overlap_tsv)
    io.write_h5mu(mdata, out_h5mu)


def integrate(in_h5mu: PathLike, model: PathLike, out_h5mu: PathLike, r2_tsv: PathLike,
              factors_tsv: PathLike, weights_tsv: PathLike, *,
              mofa_cfg: Mapping[str, Any]) -> None:
    mdata = io.read_h5mu(in_h5mu)
    with io.atomic_path(model) as tmp:
        res = tl.run_mofa(mdata, tl.MofaOptions.from_config(dict(mofa_cfg)), tmp)
    tl.attach_mofa(mdata, res)
    io.write_tsv(tl.variance_explained_table(res), r2_tsv)
    io.write_tsv(res.factors.rename_axis("sample_id").reset_index(), factors_tsv)
    w = pd.concat([df.rename_axis("feature").reset_index().assign(omic=v)
                   for v, df in res.weights.items()], ignore_index=True)
    io.write_tsv(w[["feature", "omic", *res.factors.columns]], weights_tsv)
    io.write_h5mu(mdata, out_h5mu)


def _outcome(samples: PathLike, outcome: str | None) -> pd.Series | None:
    if outcome is None:
        return None
    return io.read_sample_sheet(samples)[outcome]


def _result_from_h5mu(mdata: Any) -> tl.MofaResult:
    names = list(mdata.uns["mofa"]["factors"])
    z = pd.DataFrame(mdata.obsm["X_mofa"], index=mdata.obs_names, columns=names)
    weights = {v: pd.DataFrame(a.varm["LFs"], index=a.var_names, columns=names)
               for v, a in mdata.mod.items()}
    r2 = pd.DataFrame({v: np.asarray(x) for v, x in
                       mdata.uns["mofa"]["variance_explained"].items()}, index=names).T
    r2_total = pd.Series(dict(mdata.uns["mofa"]["variance_explained_total"]))
    return tl.MofaResult(factors=z, weights=weights, r2=r2.loc[list(mdata.mod)],
                         r2_total=r2_total.loc[list(mdata.mod)])


def stability_shard(h5mu: PathLike, samples: PathLike, out_tsv: PathLike, *, outcome: str,
                    shard: int, shards: int, select_cfg: Mapping[str, Any]) -> None:
    """Selection counts of the resamples r with r % shards == shard (all permutations)."""
    from . import stability as st
    from .predict import feature_table

    mdata = io.read_h5mu(h5mu)
    y = io.read_sample_sheet(samples)[outcome]
    x = feature_table(mdata, list(mdata.obs_names))
    counts = st.stability_counts(x, y, range(shard, int(select_cfg["resamples"]), shards),
                                 int(select_cfg["permutations"]),
                                 c=float(select_cfg["stability_c"]),
                                 seed=int(select_cfg["seed"]),
                                 l1_ratio=float(select_cfg["l1_ratio"]))
    io.write_tsv(counts, out_tsv)


def select(h5mu: PathLike, samples: PathLike, ranked_tsv: PathLike,
           per_omic: Mapping[str, PathLike], factor_tsv: PathLike, *,
           outcome: str | None, stability_shards: list[PathLike] | None = None,
           resamples: int = 0) -> None:
    mdata = io.read_h5mu(h5mu)
    res = _result_from_h5mu(mdata)
    ranked, ftab = tl.rank_features(res, _outcome(samples, outcome))
    if stability_shards:
        from .stability import stability_summary

        counts = pd.concat([pd.read_csv(p, sep="\t", dtype={"feature": str})
                            for p in stability_shards], ignore_index=True)
        summ = stability_summary(counts, resamples).set_index("feature")
        key = ranked["omic"] + ":" + ranked["feature"]
        ranked["selection_probability"] = summ["selection_probability"].reindex(key).to_numpy()
        ranked["q_value"] = summ["q_value"].reindex(key).to_numpy()
        # consensus: mean of the MOFA-score rank and the selection-probability rank
        sel_rank = ranked["selection_probability"].rank(ascending=False, method="min")
        mean_rank = (ranked["rank"] + sel_rank) / 2
        ranked["consensus_rank"] = mean_rank.rank(method="first").astype(int)
        log.info("stability selection: %d feature(s) with q < 0.05",
                 int((ranked["q_value"] < 0.05).sum()))
    io.write_tsv(ranked, ranked_tsv)
    for omic, path in per_omic.items():
        sub = ranked[ranked["omic"] == omic].drop(columns=["rank"])
        sub = sub.rename(columns={"rank_in_omic": "rank"})
        io.write_tsv(sub[["feature", "omic", "rank", *[c for c in sub.columns if c not in
                                                        ("feature", "omic", "rank")]]], path)
    io.write_tsv(ftab, factor_tsv)


def cluster(h5mu: PathLike, samples: PathLike, clusters_tsv: PathLike, selection_tsv: PathLike,
            umap_tsv: PathLike, vs_outcome_tsv: PathLike, *, cluster_cfg: Mapping[str, Any],
            outcome: str | None) -> None:
    mdata = io.read_h5mu(h5mu)
    z = pd.DataFrame(mdata.obsm["X_mofa"], index=mdata.obs_names)
    clusters, table, umap = tl.cluster_factors(z, tl.ClusterOptions.from_config(
        dict(cluster_cfg)))
    chosen = table[table["chosen"]]
    if len(chosen):
        r = chosen.iloc[0]
        log.info("Leiden resolution %.3g kept: %d clusters, silhouette %.3f (highest among "
                 "admissible partitions)", r["resolution"], r["n_clusters"], r["silhouette"])
    io.write_tsv(clusters, clusters_tsv)
    io.write_tsv(table, selection_tsv)
    io.write_tsv(pd.DataFrame({"sample_id": clusters["sample_id"], "UMAP1": umap[:, 0],
                               "UMAP2": umap[:, 1]}), umap_tsv)
    y = _outcome(samples, outcome)
    if y is None:
        cmp = pd.DataFrame({"metric": [], "value": [], "n_samples": []})
    elif not tl.is_categorical(y):
        cmp = pd.DataFrame({"metric": ["not computed: outcome is numeric"], "value": [np.nan],
                            "n_samples": [int(y.notna().sum())]})
    else:
        cmp = tl.compare_partitions(clusters.set_index("sample_id")["cluster"], y)
        log.info("clusters vs %s: ARI %.3f, NMI %.3f", outcome, cmp["value"].iloc[0],
                 cmp["value"].iloc[1])
    io.write_tsv(cmp, vs_outcome_tsv, float_format="%.4f")


def plots(h5mu: PathLike, samples: PathLike, ranked_tsv: PathLike, factor_tsv: PathLike,
          clusters_tsv: PathLike, umap_tsv: PathLike, stems: Mapping[str, PathLike], *,
          outcome: str | None, heatmap_top: int) -> None:
    mdata = io.read_h5mu(h5mu)
    res = _result_from_h5mu(mdata)
    y = _outcome(samples, outcome)
    ftab = pd.read_csv(factor_tsv, sep="\t")
    clusters = pd.read_csv(clusters_tsv, sep="\t", dtype={"sample_id": str}).set_index(
        "sample_id")["cluster"]
    umap = pd.read_csv(umap_tsv, sep="\t", dtype={"sample_id": str}).set_index("sample_id")
    yo = y.reindex(res.factors.index) if y is not None else None
    pl.variance_explained(res.r2, res.r2_total, stems["variance_explained"])
    pl.factor_scatter(res.factors, yo, ftab if outcome else None, outcome,
                      stems["factors"])
    pl.umap_clusters(umap.loc[clusters.index, ["UMAP1", "UMAP2"]].to_numpy(), clusters,
                     y.reindex(clusters.index) if y is not None else None, outcome,
                     stems["umap"])
    ranked = pd.read_csv(ranked_tsv, sep="\t", dtype={"feature": str}).head(heatmap_top)
    values = pr.feature_table(mdata, list(mdata.obs_names))
    pl.biomarker_heatmap(values, ranked, clusters, yo, outcome, stems["heatmap"])


def manifest(inputs: Mapping[str, PathLike], config: Mapping[str, Any], out_json: PathLike
             ) -> None:
    """Run manifest: checksums of every input and the resolved config (for provenance)."""
    from importlib import metadata

    pkgs = {}
    for name in ("snakemake", "mofapy2", "scanpy", "anndata", "mudata", "numpy", "pandas",
                 "scikit-learn", "scipy", "statsmodels", "leidenalg", "igraph", "umap-learn",
                 "matplotlib"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    doc = {"inputs": {k: {"path": str(p), "sha256": io.sha256(p)} for k, p in
                      sorted(inputs.items())},
           "config": config, "versions": pkgs}
    with io.atomic_path(out_json) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")



def associate(h5mu: PathLike, samples: PathLike, clusters_tsv: PathLike, table_tsv: PathLike,
              bias_tsv: PathLike, heatmap_stem: PathLike, km_stem: PathLike, *,
              survival_cfg: Mapping[str, Any] | None, bias_columns: list[str],
              outcome: str | None) -> None:
    """Factors and clusters against every clinical column, survival, and the bias check."""
    mdata = io.read_h5mu(h5mu)
    factors = pd.DataFrame(mdata.obsm["X_mofa"], index=mdata.obs_names,
                           columns=list(mdata.uns["mofa"]["factors"]))
    sheet = io.read_sample_sheet(samples)
    clusters = pd.read_csv(clusters_tsv, sep="\t", dtype={"sample_id": str}).set_index(
        "sample_id")["cluster"]
    spec = stats.SurvivalSpec.from_config(dict(survival_cfg) if survival_cfg else None)
    table = stats.associations(factors, clusters, sheet, spec, exclude=bias_columns)
    io.write_tsv(table, table_tsv)
    io.write_tsv(stats.bias_check(factors, sheet, bias_columns, outcome), bias_tsv)
    n_sig = int((table["q"] < 0.05).sum())
    log.info("%d tests, %d with BH q < 0.05", len(table), n_sig)
    pl.association_heatmap(table, heatmap_stem)
    surv, p = None, None
    if spec is not None:
        surv = stats.survival_frame(sheet.reindex(factors.index), spec)
        lr = table[(table["variable"] == "cluster") & (table["clinical"] == "survival")]
        p = float(lr["p"].iloc[0]) if len(lr) else None
        if p is not None:
            log.info("survival by cluster: log-rank p = %.3g", p)
    pl.survival_by_cluster(surv, clusters, p, km_stem)


def predict(h5mu: PathLike, samples: PathLike, metrics_tsv: PathLike, folds_tsv: PathLike,
            predictions_tsv: PathLike, importance_tsv: PathLike, contributions_tsv: PathLike,
            model_out: PathLike, roc_stem: PathLike, cal_stem: PathLike, *, endpoint: str,
            predict_cfg: Mapping[str, Any], mofa_cfg: Mapping[str, Any]) -> None:
    """Nested-CV prediction of ``endpoint``; final model refitted on all samples, explained."""
    import joblib

    mdata = io.read_h5mu(h5mu)
    y = io.read_sample_sheet(samples)[endpoint]
    opts = pr.PredictOptions.from_config(dict(predict_cfg))
    per_fold, preds = pr.nested_cv(mdata, y, tl.MofaOptions.from_config(dict(mofa_cfg)), opts)
    summary = pr.summarise(per_fold)
    key = "auc" if "auc" in per_fold else "r2"
    score = summary[(summary["metric"] == key) & (summary["model"] != "baseline")]
    best = str(score.sort_values(["mean", "model"], ascending=[False, True])["model"].iloc[0])
    summary["selected"] = summary["model"] == best
    for _, r in summary[summary["metric"] == key].iterrows():
        log.info("%s: %s %.3f (95%% CI %.3f-%.3f)", r["model"], key, r["mean"], r["ci_low"],
                 r["ci_high"])
    io.write_tsv(summary, metrics_tsv)
    io.write_tsv(per_fold, folds_tsv)
    io.write_tsv(preds.sort_values(["model", "repeat", "fold", "sample_id"], kind="mergesort"),
                 predictions_tsv)
    factors = pd.DataFrame(mdata.obsm["X_mofa"], index=mdata.obs_names,
                           columns=list(mdata.uns["mofa"]["factors"]))
    est, importance, contrib = pr.final_model(mdata, y, factors, best, opts)
    importance.insert(1, "model", best)
    io.write_tsv(importance, importance_tsv)
    io.write_tsv(contrib.rename_axis("sample_id").reset_index(), contributions_tsv)
    with io.atomic_path(model_out) as tmp:
        joblib.dump({"model": est, "kind": best, "endpoint": endpoint,
                     "variables": list(importance["variable"])}, tmp)
    pl.prediction_plots(preds, summary, endpoint, roc_stem, cal_stem)
