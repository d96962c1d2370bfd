"""One function per rule: read inputs, call the library, write outputs atomically.

Rule scripts call exactly one of these with values from ``snakemake.input/output/params``; tests
call them directly with temporary paths.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import io, mofa, privacy, stats, tl
from . import predict as pr
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
                        map_file=sample_id_cfg.get("map"), name=omic,
                        ignore_unlisted=bool(sample_id_cfg.get("ignore_unlisted", False)),
                        columns=io.Columns(omic_cfg.get("label_column"),
                                           omic_cfg.get("columns")),
                        long=io.Long(**omic_cfg["long"]) if omic_cfg.get("long") else None)
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
    from . import pl  # matplotlib is imported only by the steps that draw
    pl.qc_omic(raw, norm, qc_stem)


def mudata(omic_h5ads: Mapping[str, PathLike], samples: PathLike, out_h5mu: PathLike,
           overlap_tsv: PathLike) -> None:
    sheet = io.read_sample_sheet(samples)
    mods = {name: io.read_h5ad(p) for name, p in omic_h5ads.items()}
    tl.check_overlap(mods)
    mdata = tl.build_mudata(mods, sheet)
    table = tl.overlap_table(mods, pd.Index(mdata.obs_names))
    n_all = int(table.loc[table["n_omics"] == len(mods), "n_samples"].sum())
    log.info("%d samples in at least one omic, %d in all %d omics", mdata.n_obs, n_all,
             len(mods))
    io.write_tsv(table, overlap_tsv)
    io.write_h5mu(mdata, out_h5mu)


def mofa_restart(in_h5mu: PathLike, model: PathLike, *, restart: int,
                 mofa_cfg: Mapping[str, Any], groups: str | None = None) -> None:
    """One MOFA+ fit with seed ``integrate.seed + restart`` (MOFA+ groups from the sample-sheet
    column ``groups``, if set)."""
    opts = mofa.MofaOptions.from_config(dict(mofa_cfg))
    opts = dataclasses.replace(opts, seed=opts.seed + restart)
    mdata = io.read_h5mu(in_h5mu)
    with io.atomic_path(model) as tmp:
        mofa.save_mofa(mdata, opts, tmp, groups, progress=f"MOFA+ restart {restart + 1}")


def integrate(in_h5mu: PathLike, restarts: list[PathLike], model: PathLike,
              out_h5mu: PathLike, r2_tsv: PathLike, r2_groups_tsv: PathLike,
              factors_tsv: PathLike,
              weights_tsv: PathLike, restarts_tsv: PathLike, stability_tsv: PathLike) -> None:
    """Keep the restart with the best ELBO; write its model, factors, weights, R2, stability."""
    mdata = io.read_h5mu(in_h5mu)
    results = [mofa.mofa_result(mdata, p) for p in restarts]
    best, table, stability = mofa.choose_restart(results)
    res = results[best]
    res.info["restarts"] = len(results)
    log.info("MOFA+ restarts: %d; kept restart %d (seed %s, ELBO %.6g); smallest matched "
             "factor correlation of another restart with it: %s", len(results), best,
             res.info.get("seed"), res.info["elbo"],
             "n/a (one restart)" if len(results) == 1
             else f"{table['min_matched_r_to_best'].drop(best).min():.3f}")
    with io.atomic_path(model) as tmp:
        shutil.copyfile(restarts[best], tmp)
        mofa.write_samples_metadata(tmp, mdata.obs[[c for c in mdata.obs.columns
                                                    if ":" not in str(c)]])
    mofa.attach_mofa(mdata, res)
    mdata.uns["mofa"]["stability"] = stability.drop(columns="factor").to_dict(orient="list")
    io.write_tsv(mofa.variance_explained_table(res), r2_tsv)
    io.write_tsv(mofa.variance_explained_groups_table(res), r2_groups_tsv)
    if len(res.r2_groups) > 1:
        tot = pd.DataFrame(res.r2_total_groups)
        log.info("MOFA+ groups: %d (%s); variance explained per view and group (%%): %s",
                 len(res.r2_groups), ", ".join(res.r2_groups), "; ".join(
                     f"{v} " + " / ".join(f"{x:.1f}" for x in tot.loc[v]) for v in tot.index))
    io.write_tsv(res.factors.rename_axis("sample_id").reset_index(), factors_tsv)
    io.write_tsv(mofa.weights_table(res.weights), weights_tsv)
    io.write_tsv(table, restarts_tsv)
    io.write_tsv(stability, stability_tsv)
    io.write_h5mu(mdata, out_h5mu)


def _outcome(samples: PathLike, outcome: str | None) -> pd.Series | None:
    if outcome is None:
        return None
    return io.read_sample_sheet(samples)[outcome]


def _result_from_h5mu(mdata: Any) -> mofa.MofaResult:
    names = list(mdata.uns["mofa"]["factors"])
    z = mofa.factor_table(mdata)
    weights = {v: pd.DataFrame(a.varm["LFs"], index=a.var_names, columns=names)
               for v, a in mdata.mod.items()}
    r2 = pd.DataFrame({v: np.asarray(x) for v, x in
                       mdata.uns["mofa"]["variance_explained"].items()}, index=names).T
    r2_total = pd.Series(dict(mdata.uns["mofa"]["variance_explained_total"]))
    return mofa.MofaResult(factors=z, weights=weights, r2=r2.loc[list(mdata.mod)],
                         r2_total=r2_total.loc[list(mdata.mod)])


def stability_shard(h5mu: PathLike, samples: PathLike, out_tsv: PathLike, *, outcome: str,
                    shard: int, shards: int, select_cfg: Mapping[str, Any],
                    outcome_kind: str = "auto") -> None:
    """Selection counts of the resamples r with r % shards == shard (all permutations)."""
    from . import stability as st
    from .predict import feature_table

    mdata = io.read_h5mu(h5mu)
    y = io.read_sample_sheet(samples)[outcome]
    x = feature_table(mdata, list(mdata.obs_names))
    counts = st.stability_counts(x, y, range(shard, int(select_cfg["resamples"]), shards),
                                 int(select_cfg["permutations"]),
                                 penalty=float(select_cfg["stability_penalty"]),
                                 seed=int(select_cfg["seed"]),
                                 l1_ratio=float(select_cfg["l1_ratio"]),
                                 solver=str(select_cfg["stability_solver"]),
                                 progress=f"stability shard {shard + 1}/{shards}",
                                 kind=outcome_kind)
    io.write_tsv(counts, out_tsv)


def select(h5mu: PathLike, samples: PathLike, ranked_tsv: PathLike,
           per_omic: Mapping[str, PathLike], factor_tsv: PathLike, *,
           outcome: str | None, stability_shards: list[PathLike] | None = None,
           resamples: int = 0, rf_tsv: PathLike | None = None,
           outcome_kind: str = "auto") -> None:
    mdata = io.read_h5mu(h5mu)
    res = _result_from_h5mu(mdata)
    ranked, ftab = tl.rank_features(res, _outcome(samples, outcome), outcome_kind)
    stab = rf = None
    if stability_shards:
        from .stability import stability_summary

        counts = pd.concat([io.read_tsv(p) for p in stability_shards], ignore_index=True)
        stab = stability_summary(counts, resamples)
    if rf_tsv is not None:
        rf = io.read_tsv(rf_tsv)
    ranked = tl.consensus_ranking(ranked, stab, rf)
    io.write_tsv(ranked, ranked_tsv)
    for omic, path in per_omic.items():
        sub = ranked[ranked["omic"] == omic].drop(columns=["rank"])
        sub = sub.rename(columns={"rank_in_omic": "rank"})
        io.write_tsv(sub[["feature", "omic", "rank", *[c for c in sub.columns if c not in
                                                        ("feature", "omic", "rank")]]], path)
    io.write_tsv(ftab, factor_tsv)


def rf_importance(h5mu: PathLike, samples: PathLike, out_tsv: PathLike, *, outcome: str,
                  select_cfg: Mapping[str, Any], threads: int = 1,
                  outcome_kind: str = "auto") -> None:
    """Random-forest permutation importance of every feature for the outcome (inside CV)."""
    from .stability import rf_permutation_importance

    mdata = io.read_h5mu(h5mu)
    y = io.read_sample_sheet(samples)[outcome].reindex(mdata.obs_names)
    x = pr.feature_table(mdata, list(mdata.obs_names))
    c = dict(select_cfg)
    table = rf_permutation_importance(
        x, y, trees=int(c["rf_trees"]), folds=int(c["rf_folds"]), repeats=int(c["rf_repeats"]),
        candidates=int(c["rf_candidates"]), permutations=int(c["rf_permutations"]),
        seed=int(c["seed"]), n_jobs=threads, kind=outcome_kind)
    top = table.sort_values("rf_importance", ascending=False).head(5)
    log.info("random-forest permutation importance (%d folds x %d repeats): top %s",
             c["rf_folds"], c["rf_repeats"], ", ".join(top["feature"]))
    io.write_tsv(table, out_tsv)


def cluster(h5mu: PathLike, samples: PathLike, clusters_tsv: PathLike, selection_tsv: PathLike,
            umap_tsv: PathLike, vs_outcome_tsv: PathLike, *, cluster_cfg: Mapping[str, Any],
            outcome: str | None, outcome_kind: str = "auto") -> None:
    """Leiden clusters of the factors; every partition tried, and the PCA + k-means baseline
    on all features, compared with the chosen one and (classes) with the outcome."""
    from sklearn.metrics import adjusted_rand_score

    from .errors import Stopwatch, warn_user

    watch = Stopwatch(log, "cluster", 4)
    mdata = io.read_h5mu(h5mu)
    z = mofa.factor_table(mdata)
    opts = tl.ClusterOptions.from_config(dict(cluster_cfg))
    y = _outcome(samples, outcome)
    classes = y is not None and tl.is_categorical(y, outcome_kind)
    yy = y.reindex(z.index) if classes and y is not None else None
    clusters, table, umap = tl.cluster_factors(z, opts, yy, avoid=[] if y is None else y.dropna(),
                                               watch=watch)
    chosen = table[table["chosen"]]
    n_chosen = int(chosen["n_clusters"].iloc[0]) if len(chosen) else 1
    if len(chosen):
        r = chosen.iloc[0]
        log.info("Leiden resolution %.3g kept: %d clusters, silhouette %.3f (%s)",
                 r["resolution"], r["n_clusters"], r["silhouette"],
                 "highest among admissible partitions" if opts.n_clusters is None else
                 f"closest to the {opts.n_clusters} clusters asked for")
    n_cls = int(yy.dropna().nunique()) if yy is not None else 0
    base, labels = tl.pca_kmeans_baseline(pr.feature_table(mdata, list(z.index)),
                                          n_components=z.shape[1],
                                          ks=[*range(2, 9), n_chosen, n_cls], seed=opts.seed)
    watch.done("PCA + k-means baseline on all features")
    chosen_lab = clusters["cluster"].to_numpy()
    base["silhouette"] = tl.silhouettes(z.to_numpy(), [labels[k] for k in base["k"]])
    base["admissible"] = base["min_size"] >= opts.min_cluster_size
    base["chosen"] = False
    base["ari_to_chosen"] = [adjusted_rand_score(chosen_lab, labels[k]) for k in base["k"]]
    if yy is not None:
        base["ari_outcome"] = [tl.ari_known(yy, labels[k]) for k in base["k"]]
        mine = float(chosen["ari_outcome"].iloc[0]) if len(chosen) else 0.0
        best = table.loc[table["ari_outcome"].idxmax()]
        km = base[base["k"] == n_cls]
        log.info("ARI with %s: chosen partition %.3f; best Leiden resolution %.3g %.3f; PCA + "
                 "k-means (k = %d) %s", outcome, mine, best["resolution"], best["ari_outcome"],
                 n_cls, f"{km['ari_outcome'].iloc[0]:.3f}" if len(km) else "n/a")
        if n_chosen < n_cls and best["ari_outcome"] > mine + 0.05:
            warn_user(f"clusters: silhouette chose {n_chosen} clusters while {outcome} has "
                      f"{n_cls} classes; resolution {best['resolution']:g} gives "
                      f"{int(best['n_clusters'])} clusters that match it better (ARI "
                      f"{best['ari_outcome']:.2f} vs {mine:.2f}); set cluster.n_clusters to "
                      "ask for a number, see cluster/resolution_selection.tsv")
    table = pd.concat([table, base], ignore_index=True)
    io.write_tsv(clusters, clusters_tsv)
    io.write_tsv(table, selection_tsv)
    io.write_tsv(pd.DataFrame({"sample_id": clusters["sample_id"], "UMAP1": umap[:, 0],
                               "UMAP2": umap[:, 1]}), umap_tsv)
    if y is None:
        cmp = pd.DataFrame({"metric": [], "value": [], "n_samples": []})
    elif not classes:
        cmp = pd.DataFrame({"metric": ["not computed: outcome is numeric"], "value": [np.nan],
                            "n_samples": [int(y.notna().sum())]})
    else:
        cmp = tl.compare_partitions(clusters.set_index("sample_id")["cluster"], y)
        log.info("clusters vs %s: ARI %.3f, NMI %.3f", outcome, cmp["value"].iloc[0],
                 cmp["value"].iloc[1])
    io.write_tsv(cmp, vs_outcome_tsv, float_format="%.4f")


def overview(inputs: Mapping[str, PathLike], out_html: PathLike,
             tables: Mapping[str, PathLike], *, cohort: str, outcome: str | None,
             endpoint: str | None) -> None:
    """The report's first page and its key tables as HTML (cohort-level figures only)."""
    from .overview import write_overview

    write_overview(inputs, out_html, tables, cohort, outcome, endpoint)


def plots(h5mu: PathLike, samples: PathLike, ranked_tsv: PathLike, factor_tsv: PathLike,
          clusters_tsv: PathLike, umap_tsv: PathLike, stems: Mapping[str, PathLike], *,
          outcome: str | None, heatmap_top: int) -> None:
    mdata = io.read_h5mu(h5mu)
    res = _result_from_h5mu(mdata)
    y = _outcome(samples, outcome)
    ftab = io.read_tsv(factor_tsv)
    clusters = io.read_tsv(clusters_tsv).set_index(
        "sample_id")["cluster"]
    umap = io.read_tsv(umap_tsv).set_index("sample_id")
    yo = y.reindex(res.factors.index) if y is not None else None
    from . import pl  # matplotlib is imported only by the steps that draw
    pl.variance_explained(res.r2, res.r2_total, stems["variance_explained"])
    pl.factor_scatter(res.factors, yo, ftab if outcome else None, outcome,
                      stems["factors"])
    pl.umap_clusters(umap.loc[clusters.index, ["UMAP1", "UMAP2"]].to_numpy(), clusters,
                     y.reindex(clusters.index) if y is not None else None, outcome,
                     stems["umap"])
    ranked = io.read_tsv(ranked_tsv).head(heatmap_top)
    values = pr.feature_table(mdata, list(mdata.obs_names))
    pl.biomarker_heatmap(values, ranked, clusters, yo, outcome, stems["heatmap"])


def manifest(inputs: Mapping[str, PathLike], config: Mapping[str, Any], out_json: PathLike
             ) -> None:
    """Run manifest: checksums of every input and the resolved config (for provenance)."""
    pkgs = io.package_versions()
    doc = {"inputs": {k: {"path": str(p), "sha256": io.sha256(p)} for k, p in
                      sorted(inputs.items())},
           "config": config, "versions": pkgs}
    with io.atomic_path(out_json) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")



def associate(h5mu: PathLike, samples: PathLike, clusters_tsv: PathLike, table_tsv: PathLike,
              bias_tsv: PathLike, heatmap_stem: PathLike, km_stem: PathLike, *,
              survival_cfg: Mapping[str, Any] | None, bias_columns: list[str],
              outcome: str | None, outcome_kind: str = "auto") -> None:
    """Factors and clusters against every clinical column, survival, and the bias check."""
    mdata = io.read_h5mu(h5mu)
    factors = mofa.factor_table(mdata)
    sheet = io.read_sample_sheet(samples)
    clusters = io.read_tsv(clusters_tsv).set_index(
        "sample_id")["cluster"]
    spec = stats.SurvivalSpec.from_config(dict(survival_cfg) if survival_cfg else None)
    table = stats.associations(factors, clusters, sheet, spec, exclude=bias_columns,
                               kinds={outcome: outcome_kind} if outcome else None)
    io.write_tsv(table, table_tsv)
    io.write_tsv(stats.bias_check(factors, sheet, bias_columns, outcome), bias_tsv)
    n_sig = int((table["q"] < 0.05).sum())
    log.info("%d tests, %d with BH q < 0.05", len(table), n_sig)
    from . import pl  # matplotlib is imported only by the steps that draw
    pl.association_heatmap(table, heatmap_stem)
    surv, p = None, None
    if spec is not None:
        surv = stats.survival_frame(sheet.reindex(factors.index), spec)
        lr = table[(table["variable"] == "cluster") & (table["clinical"] == "survival")]
        p = float(lr["p"].iloc[0]) if len(lr) else None
        if p is not None:
            log.info("survival by cluster: log-rank p = %.3g", p)
    pl.survival_by_cluster(surv, clusters, p, km_stem,
                           time_label=spec.axis_label if spec is not None else "time")


def by_group(h5mu: PathLike, samples: PathLike, clusters_tsv: PathLike, r2_groups_tsv: PathLike,
             assoc_tsv: PathLike, clusters_out: PathLike, plot_stem: PathLike, *, groups: str,
             survival_cfg: Mapping[str, Any] | None, bias_columns: list[str],
             outcome: str | None, outcome_kind: str = "auto") -> None:
    """Per MOFA+ group (the sample-sheet column ``groups``): the associations of
    :func:`associate` within each group (BH q within the group), each group's make-up by
    cluster, and the variance explained per group and view (plot)."""
    mdata = io.read_h5mu(h5mu)
    factors = mofa.factor_table(mdata)
    sheet = io.read_sample_sheet(samples)
    g = sheet[groups].reindex(factors.index).astype("string")
    clusters = io.read_tsv(clusters_tsv).set_index("sample_id")["cluster"].reindex(
        factors.index)
    spec = stats.SurvivalSpec.from_config(dict(survival_cfg) if survival_cfg else None)
    kinds = {outcome: outcome_kind} if outcome else None
    names = sorted(g.dropna().unique())
    parts = []
    for name in names:
        idx = g.index[g == name]
        t = stats.associations(factors.loc[idx], clusters.loc[idx], sheet, spec,
                               exclude=bias_columns, kinds=kinds)
        parts.append(t.assign(group=name))
        log.info("group %s: %d patients, %d tests, %d with BH q < 0.05 (within the group)",
                 name, len(idx), len(t), int((t["q"] < 0.05).sum()))
    table = pd.concat(parts, ignore_index=True)
    io.write_tsv(table[["group", *[c for c in table.columns if c != "group"]]], assoc_tsv)
    tab = pd.crosstab(g.rename("group"), clusters.astype(str).rename("cluster"))
    long = tab.stack().rename("n").reset_index()
    long["share_of_group"] = long["n"] / long.groupby("group")["n"].transform("sum")
    long["share_of_cluster"] = long["n"] / long.groupby("cluster")["n"].transform("sum")
    io.write_tsv(long, clusters_out)
    r = stats.test_clusters(clusters, g, "categorical")
    if r is not None:
        log.info("clusters vs %s: chi-square p = %.3g, Cramer's V %.2f (a high V means the "
                 "clusters separate sites: check the bias table before reading them as "
                 "patient types)", groups, r["p"], r["effect"])
    from . import pl  # matplotlib is imported only by the steps that draw
    pl.variance_explained_groups(io.read_tsv(r2_groups_tsv), plot_stem)


def _groups(sheet: pd.DataFrame, column: str | None, opts: pr.PredictOptions
            ) -> pd.Series | None:
    """The groups column for leave_group_out (None with k-fold, or without a column: then
    :func:`omix.predict.outer_splits` says what is missing)."""
    if opts.cv != "leave_group_out" or column is None:
        return None
    return sheet[column]


def _n_folds(per_fold: pd.DataFrame, opts: pr.PredictOptions) -> int:
    """Outer folds per repeat (k, or the number of held-out groups)."""
    return int(per_fold["group"].nunique()) if "group" in per_fold else opts.folds


def _log_groups(by_group: pd.DataFrame, key: str) -> None:
    rows = by_group[(by_group["model"] == pr.CHOICE) | (by_group["model"] == "factors")]
    for _, r in rows[rows["metric"] == key].iterrows():
        log.info("held-out group %s, %s: %s %.3f", r["group"], r["model"], key, r["mean"])


def predict(h5mu: PathLike, samples: PathLike, out: Mapping[str, PathLike], *, endpoint: str,
            predict_cfg: Mapping[str, Any], mofa_cfg: Mapping[str, Any],
            raw_h5ads: Mapping[str, PathLike] | None = None,
            omics_cfg: Mapping[str, Any] | None = None, batch: str | None = None,
            groups: str | None = None, threads: int = 1) -> None:
    """Nested-CV prediction of ``endpoint``; final model refitted on all samples, explained.

    ``metrics.tsv``: every candidate, the reference baselines, the prevalence baseline and the
    ``inner_cv_choice`` row (the honest estimate of the whole procedure, model choice
    included); ``selected`` marks the candidate refitted on all patients; ``group`` is ``all``
    for these rows over every outer fold and, with ``predict.cv: leave_group_out``, names the
    held-out group of the per-group rows that follow.  ``out`` maps the
    rule's output names (metrics, folds, predictions, per_class, importance, contributions,
    model, roc, calibration) to paths."""
    import joblib

    mdata = io.read_h5mu(h5mu)
    sheet = io.read_sample_sheet(samples)
    y = sheet[endpoint]
    opts = dataclasses.replace(pr.PredictOptions.from_config(dict(predict_cfg)),
                               n_jobs=max(1, int(threads)))
    g = _groups(sheet, groups, opts)
    fold_data = pr.FoldData.of_run(mdata, samples, raw_h5ads, omics_cfg, batch)
    per_fold, preds = pr.nested_cv(mdata, y, mofa.MofaOptions.from_config(dict(mofa_cfg)), opts,
                                   fold_data, g)
    yy = y.reindex(mdata.obs_names)
    summary = pr.summarise(per_fold, _n_folds(per_fold, opts),
                           pr.smallest_class(yy, opts.endpoint_kind))
    best = pr.choose_final(summary)
    summary["selected"] = summary["model"] == best
    summary["group"] = io.POOLED
    if g is not None:
        by_group = pr.per_group_rows(per_fold, {
            str(k): pr.smallest_class(yy[g.reindex(yy.index).astype(str) == k],
                                      opts.endpoint_kind)
            for k in per_fold["group"].unique()})
        by_group["selected"] = by_group["model"] == best
        _log_groups(by_group, "auc" if "auc" in per_fold else "r2")
        summary = pd.concat([summary, by_group[summary.columns]], ignore_index=True)
    key = "auc" if "auc" in per_fold else "r2"
    whole = io.pooled(summary)
    for _, r in whole[whole["metric"] == key].iterrows():
        log.info("%s (%s): %s %.3f (95%% CI %.3f-%.3f)", r["model"], r["role"], key, r["mean"],
                 r["ci_low"], r["ci_high"])
    chosen = per_fold.loc[per_fold["model"] == pr.CHOICE, "chosen"].value_counts()
    log.info("inner-CV choice per outer fold: %s; refitted on all patients: %s",
             ", ".join(f"{m} {n}x" for m, n in chosen.items()), best)
    io.write_tsv(summary, out["metrics"])
    io.write_tsv(per_fold, out["folds"])
    io.write_tsv(preds.sort_values(["model", "repeat", "fold", "sample_id"], kind="mergesort"),
                 out["predictions"])
    if "per_class" in out:
        classes = any(c.startswith("p_") for c in preds.columns)
        table = pd.concat([pr.per_class_metrics(preds, m) for m in preds["model"].unique()],
                          ignore_index=True) if classes else pd.DataFrame(
            columns=["model", "class", "n", "auc_one_vs_rest", "sensitivity", "precision"])
        io.write_tsv(table, out["per_class"])
    factors = mofa.factor_table(mdata)
    est, importance, contrib = pr.final_model(mdata, y, factors, best, opts)
    importance.insert(1, "model", best)
    io.write_tsv(importance, out["importance"])
    io.write_tsv(contrib.rename_axis("sample_id").reset_index(), out["contributions"])
    with io.atomic_path(out["model"]) as tmp:
        joblib.dump({"model": est, "kind": best, "endpoint": endpoint,
                     "variables": list(importance["variable"]),
                     "columns": list(est.omix_columns)}, tmp)
    from . import pl  # matplotlib is imported only by the steps that draw
    pl.prediction_plots(preds, io.pooled(summary), endpoint, str(out["roc"]).removesuffix(".png"),
                        str(out["calibration"]).removesuffix(".png"))


# --------------------------------------------------------------------------------------------
# new-cohort mode (omix.bundle, omix.score, omix.pages)
# --------------------------------------------------------------------------------------------
def bundle(norm_h5ads: Mapping[str, PathLike], h5mu: PathLike, model_hdf5: PathLike,
           clusters_tsv: PathLike, samples: PathLike, predictor: PathLike | None,
           metrics_tsv: PathLike | None, outdir: PathLike, *, config: Mapping[str, Any]
           ) -> None:
    """The frozen discovery bundle: every fitted parameter, nothing of any other cohort."""
    from . import bundle
    from .stats import SurvivalSpec

    cfg = dict(config)
    bundle.write_bundle(
        outdir, mdata=io.read_h5mu(h5mu),
        norm={o: io.read_h5ad(p) for o, p in norm_h5ads.items()},
        model_hdf5=model_hdf5,
        clusters=io.read_tsv(clusters_tsv),
        sheet=io.read_sample_sheet(samples), survival=SurvivalSpec.from_config(cfg["survival"]),
        n_neighbors=int(cfg["cluster"]["n_neighbors"]), predictor=predictor,
        cv_metrics=io.read_tsv(metrics_tsv) if metrics_tsv else None,
        config=cfg, cohort=str(cfg["cohort"]))


def apply_ingest(table: PathLike, samples: PathLike, bundle_dir: PathLike, out_h5ad: PathLike,
                 *, omic: str, omic_cfg: Mapping[str, Any], sample_id_cfg: Mapping[str, Any],
                 privacy_cfg: Mapping[str, Any] | None = None) -> None:
    """Ingest a table of a cohort to score, with the checks and messages of ``ingest``."""
    norm = json.loads((Path(bundle_dir) / "normalization.json").read_text())
    if omic not in norm:
        raise ConfigError(f"omic '{omic}' is not in the model bundle {bundle_dir} (it has: "
                          f"{', '.join(norm)})", where=f"apply omics.{omic}",
                          hint="use the discovery's omic names as keys")
    kind = norm[omic]["kind"]
    if omic_cfg.get("kind") not in (None, kind):
        raise ConfigError(f"omic '{omic}' has kind {omic_cfg['kind']} but the model was trained "
                          f"on kind {kind}", where=f"apply omics.{omic}.kind",
                          hint=f"set kind: {kind} (or leave it out) and supply that kind of data")
    ingest(table, samples, out_h5ad, omic=omic, omic_cfg={**omic_cfg, "kind": kind},
           sample_id_cfg=sample_id_cfg, privacy_cfg=privacy_cfg)


def apply_score(bundle_dir: PathLike, h5ads: Mapping[str, PathLike], samples: PathLike,
                out: Mapping[str, PathLike], *, outcome: str | None, name: str) -> None:
    """Project, assign, predict and check drift for a cohort, with frozen parameters only."""
    from . import bundle, score

    b = bundle.Bundle.load(bundle_dir)
    sheet = io.read_sample_sheet(samples)
    views, missing = score.transform_cohort(h5ads, b)
    frozen = b.mofa
    proj = {v: d for v, d in views.items() if v in frozen.views}
    if not proj:
        raise ConfigError("none of the model's continuous omics is supplied",
                          where=f"apply.{name}.omics",
                          hint=f"supply at least one of: {', '.join(frozen.views)}")
    z = frozen.project(proj)
    order = [s for s in sheet.index if s in z.index]
    z = z.loc[order]
    skipped = len(sheet) - len(order)
    if skipped:
        log.info("%d sample(s) of the sheet have none of the omics and are not scored", skipped)
    clusters = score.assign_clusters(z, b)
    pred, contrib = score.predict_new(z, views, b, order)
    ycol = outcome or b.predictor.get("endpoint")
    y = sheet[ycol] if ycol is not None and ycol in sheet.columns else None
    if y is not None and "predicted" in pred:
        pred.insert(1, "observed", y.reindex(order).to_numpy())
        metrics = score.score_metrics(pred, y)
        for _, r in metrics.iterrows():
            log.info("%s on %d patients with a known outcome: %.3f", r["metric"], r["n"],
                     r["value"])
    else:
        metrics = pd.DataFrame(columns=["metric", "value", "n"])
        log.info("no observed outcome in the sheet: metrics.tsv is empty")
    drift = score.drift_report(views, z, b)
    qc = score.qc_flags(z, views, clusters, b, order)
    drivers = score.feature_drivers(views, contrib, b)
    io.write_tsv(z.rename_axis("sample_id").reset_index(), out["factors"])
    io.write_tsv(clusters, out["clusters"])
    io.write_tsv(pred, out["predictions"])
    io.write_tsv(metrics, out["metrics"])
    io.write_tsv(drift, out["drift"])
    io.write_tsv(missing, out["missing"])
    io.write_tsv(contrib, out["contributions"])
    io.write_tsv(qc, out["qc"])
    io.write_tsv(drivers, out["drivers"])


def patient_report(bundle_dir: PathLike, scored: Mapping[str, PathLike], outdir: PathLike,
                   *, name: str, threads: int = 1) -> None:
    """One HTML page per scored patient, and an index (``threads`` pages rendered at once)."""
    from . import bundle, pages

    def read(key: str) -> pd.DataFrame:
        return io.read_tsv(scored[key])

    factors = read("factors").set_index("sample_id")
    pages = pages.patient_pages(outdir, bundle=bundle.Bundle.load(bundle_dir), factors=factors,
                             clusters=read("clusters"), predictions=read("predictions"),
                             contributions=read("contributions"),
                             qc=read("qc").fillna({"flags": ""}), drift=read("drift"),
                             cohort_name=name, drivers=read("drivers"), workers=threads)
    log.info("%d patient pages written", len(pages))


def predict_survival(h5mu: PathLike, samples: PathLike, metrics_tsv: PathLike,
                     predictions_tsv: PathLike, coefficients_tsv: PathLike,
                     km_stem: PathLike, *, survival_cfg: Mapping[str, Any],
                     predict_cfg: Mapping[str, Any], mofa_cfg: Mapping[str, Any],
                     raw_h5ads: Mapping[str, PathLike] | None = None,
                     omics_cfg: Mapping[str, Any] | None = None,
                     batch: str | None = None, groups: str | None = None,
                     threads: int = 1) -> None:
    """Cross-validated Cox prediction of survival from the factors; KM of risk groups
    (``threads`` folds fitted at once).  With ``predict.cv: leave_group_out`` each group is
    held out in turn and the metrics gain a row per held-out group (as in :func:`predict`)."""
    from lifelines.statistics import multivariate_logrank_test

    from .stats import SurvivalSpec, survival_frame

    mdata = io.read_h5mu(h5mu)
    spec = SurvivalSpec.from_config(dict(survival_cfg))
    assert spec is not None, "the rule runs only with survival columns configured"
    sheet = io.read_sample_sheet(samples)
    surv = survival_frame(sheet, spec)
    opts = dataclasses.replace(pr.PredictOptions.from_config(dict(predict_cfg)),
                               n_jobs=max(1, int(threads)))
    g = _groups(sheet, groups, opts)
    per_fold, preds = pr.nested_cv_survival(
        mdata, surv, mofa.MofaOptions.from_config(dict(mofa_cfg)), opts,
        pr.FoldData.of_run(mdata, samples, raw_h5ads, omics_cfg, batch), g)
    ev = surv.loc[[s for s in mdata.obs_names if s in surv.index], "event"]
    summary = pr.summarise(per_fold, _n_folds(per_fold, opts),
                           int(min(ev.sum(), len(ev) - ev.sum())))
    summary["selected"] = summary["model"] == "factors"
    summary["group"] = io.POOLED
    if g is not None:
        def n_min(k: str) -> int:
            e = ev[g.reindex(ev.index).astype(str) == k]
            return int(min(e.sum(), len(e) - e.sum()))

        by_group = pr.per_group_rows(per_fold, {str(k): n_min(str(k))
                                                for k in per_fold["group"].unique()})
        by_group["selected"] = by_group["model"] == "factors"
        _log_groups(by_group, "c_index")
        summary = pd.concat([summary, by_group[summary.columns]], ignore_index=True)
    r = summary[summary["model"] == "factors"].iloc[0]
    log.info("survival: C-index %.3f (95%% CI %.3f-%.3f) over %d outer folds", r["mean"],
             r["ci_low"], r["ci_high"], r["n_folds"])
    z = mofa.factor_table(mdata)
    _, coef = pr.final_survival_model(z, surv, opts)
    first = preds[preds["repeat"] == 1].set_index("sample_id")
    test = multivariate_logrank_test(first["time"], first["risk_group"], first["event"])
    log.info("out-of-fold risk groups (repeat 1): log-rank p %.3g", test.p_value)
    io.write_tsv(summary, metrics_tsv)
    io.write_tsv(preds.sort_values(["repeat", "fold", "sample_id"], kind="mergesort"),
                 predictions_tsv)
    io.write_tsv(coef, coefficients_tsv)
    from . import pl  # matplotlib is imported only by the steps that draw
    pl.survival_by_cluster(first[["time", "event"]], first["risk_group"], float(test.p_value),
                           km_stem, title="out-of-fold predicted risk groups",
                           time_label=spec.axis_label)
