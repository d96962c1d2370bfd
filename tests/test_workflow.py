"""End to end: the Snakefile in the repository, the cohort and config in another directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_cohort, run_snakemake


def test_every_contract_output_exists(finished_run: Path):
    r = finished_run / "results" / "small"
    omics = ["rna", "mutations", "protein", "metabolites", "methylation"]
    expected = ["small.h5mu", "mofa/model.hdf5", "mofa/variance_explained.tsv",
                "biomarkers/ranked.tsv", "clusters.tsv", "clusters_vs_outcome.tsv",
                "qc/sample_overlap.tsv", "manifest.json", "associations/associations.tsv",
                "associations/bias.tsv", "predict/metrics.tsv", "predict/predictions.tsv",
                "predict/importance.tsv", "predict/contributions.tsv",
                "predict/final_model.joblib", "mofa/restarts.tsv",
                "mofa/factor_stability.tsv", "mofa/restarts/restart_0.hdf5",
                "predict/survival_metrics.tsv", "predict/survival_predictions.tsv",
                "predict/survival_coefficients.tsv", "biomarkers/rf_importance.tsv",
                "model/manifest.json", "model/frozen.json", "model/normalization.json",
                "model/predictor.joblib",
                "mofa/restarts/restart_1.hdf5"]
    expected += [f"biomarkers/ranked_{o}.tsv" for o in omics]
    for p in ["variance_explained", "factors_outcome", "umap_clusters", "biomarker_heatmap",
              "associations", "survival_clusters", "roc", "calibration",
              "survival_risk_groups"] + [
            f"qc_{o}" for o in omics]:
        expected += [f"plots/{p}.png", f"plots/{p}.svg"]
    missing = [e for e in expected if not (r / e).is_file() or (r / e).stat().st_size == 0]
    assert missing == []
    for rule in ("samples", "ingest", "normalize", "mudata", "integrate", "select", "cluster",
                 "plots", "manifest", "associate", "predict", "stability", "mofa_restart",
                 "rf_importance", "bundle", "predict_survival"):
        assert list((finished_run / "logs" / rule).rglob("*.log")), rule
    for rule in ("normalize", "integrate", "cluster", "predict"):
        assert list((finished_run / "benchmarks" / rule).rglob("*.tsv")), rule
    assert not list(finished_run.rglob("*.part*"))  # no temporary file left behind


def test_restarts_keep_the_best_elbo_and_report_stability(finished_run: Path):
    import h5py

    r = finished_run / "results" / "small" / "mofa"
    table = pd.read_csv(r / "restarts.tsv", sep="\t")
    # the cohort has a binary (Bernoulli) omic and scattered missing values: the fast engine
    # trains it (no fall-back to stock mofapy2), and each restart's log says so
    assert list(table["seed"]) == [1, 2] and list(table["engine"]) == ["fast", "fast"]
    for i in range(2):
        text = (finished_run / "logs" / "mofa_restart" / "small" / f"restart_{i}.log"
                ).read_text()
        assert "MOFA+ training engine: fast" in text and "fast engine not used" not in text
    best = int(table["elbo"].idxmax())
    assert list(table["best"]) == [i == best for i in range(2)]
    # the kept model is the best restart's file, every dataset equal, plus the clinical
    # samples_metadata
    def datasets(f: h5py.File) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset)
                     else None)
        return out

    with h5py.File(r / "model.hdf5") as f, h5py.File(r / "restarts" /
                                                     f"restart_{best}.hdf5") as g:
        kept, chosen = datasets(f), datasets(g)
        assert f.attrs["omix_seed"] == g.attrs["omix_seed"] == 1 + best
    assert {k for k in kept if not k.startswith("samples_metadata/")} == set(chosen)
    for k, v in chosen.items():
        np.testing.assert_array_equal(kept[k], v, err_msg=k)
    stab = pd.read_csv(r / "factor_stability.tsv", sep="\t")
    factors = pd.read_csv(r / "factors.tsv", sep="\t")
    assert list(stab["factor"]) == list(factors.columns[1:])
    assert (stab["restarts_compared"] == 1).all()
    # planted factors are found from both seeds
    assert stab["mean_matched_r"].between(0, 1).all() and stab["mean_matched_r"].max() > 0.95
    assert table.loc[1 - best, "min_matched_r_to_best"] == stab["min_matched_r"].min()


def test_ranked_and_clusters_contract(finished_run: Path):
    r = finished_run / "results" / "small"
    ranked = pd.read_csv(r / "biomarkers" / "ranked.tsv", sep="\t")
    assert list(ranked.columns[:4]) == ["feature", "omic", "rank", "score"]
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["score"].is_monotonic_decreasing
    per = pd.read_csv(r / "biomarkers" / "ranked_metabolites.tsv", sep="\t")
    assert set(per["omic"]) == {"metabolites"} and list(per["rank"])[:3] == [1, 2, 3]
    clusters = pd.read_csv(r / "clusters.tsv", sep="\t")
    assert list(clusters.columns) == ["sample_id", "cluster"]
    assert len(clusters) == 60 and clusters["cluster"].str.match(r"^K\d+$").all()
    cmp = pd.read_csv(r / "clusters_vs_outcome.tsv", sep="\t").set_index("metric")
    assert -1 <= cmp.loc["ARI", "value"] <= 1 and cmp.loc["ARI", "n_samples"] == 60


def test_stability_selection_q_values(finished_run: Path, small_cohort: Path):
    r = finished_run / "results" / "small"
    ranked = pd.read_csv(r / "biomarkers" / "ranked.tsv", sep="\t")
    assert {"selection_probability", "q_value", "consensus_rank"} <= set(ranked.columns)
    assert ranked["q_value"].between(0, 1).all()
    assert sorted(ranked["consensus_rank"]) == list(range(1, len(ranked) + 1))
    assert len(list((r / "biomarkers" / "stability").glob("shard_*.tsv"))) == 4
    truth = pd.read_csv(small_cohort / "data" / "truth" / "features.tsv", sep="\t")
    planted = set(zip(truth.loc[truth["factor"] == "Factor1", "omic"],
                      truth.loc[truth["factor"] == "Factor1", "feature"], strict=True))
    is_planted = [(o, f) in planted for o, f in zip(ranked["omic"], ranked["feature"],
                                                     strict=True)]
    significant = ranked[ranked["q_value"] < 0.05]
    assert len(significant) >= 3
    assert np.mean([p for p, q in zip(is_planted, ranked["q_value"], strict=True)
                    if q < 0.05]) >= 0.8
    # random-forest permutation importance (inside CV) favours the planted outcome features
    ranked["planted"] = is_planted
    top = ranked.sort_values("rf_importance", ascending=False).head(10)
    assert top["planted"].mean() >= 0.6, top
    rf = pd.read_csv(r / "biomarkers" / "rf_importance.tsv", sep="\t")
    assert len(rf) == len(ranked) and rf["rf_candidate_folds"].between(0, 10).all()


def test_h5mu_holds_layers_qc_factors_and_weights(finished_run: Path):
    import mudata as md

    m = md.read_h5mu(finished_run / "results" / "small" / "small.h5mu")
    assert set(m.mod) == {"rna", "mutations", "protein", "metabolites", "methylation"}
    k = m.obsm["X_mofa"].shape[1]
    assert m.obsm["X_mofa"].shape[0] == m.n_obs == 60 and k >= 2
    for name, a in m.mod.items():
        assert "raw" in a.layers and "missing_fraction" in a.var and "n_measured" in a.obs
        assert a.varm["LFs"].shape == (a.n_vars, k), name
    assert "response" in m.obs
    assert set(m.uns["mofa"]["variance_explained"]) == set(m.mod)


def test_model_file_is_a_mofa_model(finished_run: Path):
    import h5py

    with h5py.File(finished_run / "results" / "small" / "mofa" / "model.hdf5", "r") as f:
        for key in ("expectations/Z/group1", "expectations/W/rna", "variance_explained",
                    "model_options", "training_stats", "samples/group1", "features/protein"):
            assert key in f, key
        # clinical columns as mofax / MOFA2 read them: one dataset per column, sample order
        ids = [v.decode() for v in f["samples/group1"][()]]
        meta = f["samples_metadata/group1"]
        assert [v.decode() for v in meta["sample"][()]] == ids
        sheet = pd.read_csv(finished_run / "data" / "samples.tsv", sep="\t",
                            index_col="sample_id").reindex(ids)
        assert [v.decode() for v in meta["response"][()]] == list(sheet["response"])
        np.testing.assert_array_equal(meta["age"][()], sheet["age"].to_numpy(dtype=float))
        assert not any(":" in k for k in meta)  # per-omic QC columns stay in the MuData
        assert all(v.decode().startswith("rna:GENE") for v in f["features/rna"][()])


def test_mofax_reads_the_model_with_its_clinical_metadata(finished_run: Path):
    """The model file opens in mofax (PyPI) with the clinical columns attached and the
    features named as in the MuData."""
    import mofax

    m = mofax.mofa_model(str(finished_run / "results" / "small" / "mofa" / "model.hdf5"))
    try:
        meta = m.metadata
        factors = m.get_factors(df=True)
        weights = m.get_weights(df=True)
        assert len(meta) == len(factors) == 60
        assert {"response", "age"} <= set(meta.columns)
        sheet = pd.read_csv(finished_run / "data" / "samples.tsv", sep="\t",
                            index_col="sample_id")
        assert list(meta["response"]) == list(sheet["response"].reindex(meta.index))
        assert all(str(f).split(":", 1)[0] in {"rna", "mutations", "protein", "metabolites",
                                                 "methylation"} for f in weights.index)
    finally:
        m.close()


def test_planted_factors_and_groups_are_recovered(finished_run: Path, small_cohort: Path):
    from sklearn.metrics import adjusted_rand_score

    truth = pd.read_csv(small_cohort / "data" / "truth" / "factors.tsv", sep="\t",
                        index_col=0)
    r = finished_run / "results" / "small"
    z = pd.read_csv(r / "mofa" / "factors.tsv", sep="\t", index_col=0).loc[truth.index]
    corr = np.abs(np.corrcoef(truth[["Factor1", "Factor2", "Factor3"]].T, z.T)[:3, 3:])
    assert corr.max(axis=1).min() > 0.85
    clusters = pd.read_csv(r / "clusters.tsv", sep="\t", index_col=0).loc[truth.index]
    assert adjusted_rand_score(truth["group"], clusters["cluster"]) > 0.7


def test_report_renders_with_captions(finished_run: Path):
    proc = run_snakemake(finished_run, "--report", "results/small/report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (finished_run / "results" / "small" / "report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for stem in ("variance_explained", "biomarker_heatmap", "umap_clusters", "qc_rna"):
        assert f"{stem}.png" in html


@pytest.mark.slow
def test_rerun_elsewhere_is_byte_identical(finished_run: Path, small_cohort: Path,
                                           tmp_path: Path):
    work = copy_cohort(small_cohort, tmp_path / "run2")
    proc = run_snakemake(work, "--until", "cluster", "select")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rel in ("biomarkers/ranked.tsv", "clusters.tsv", "mofa/factors.tsv",
                "clusters_vs_outcome.tsv", "qc/sample_overlap.tsv", "mofa/model.hdf5"):
        a = (finished_run / "results" / "small" / rel).read_bytes()
        b = (work / "results" / "small" / rel).read_bytes()
        assert a == b, rel


def test_bad_config_fails_at_parse_time_with_one_line(small_cohort: Path, tmp_path: Path):
    work = copy_cohort(small_cohort, tmp_path / "bad")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["omics"]["rna"]["kind"] = "rnaseq"
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(work, "-n")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if "ERROR" in ln]
    assert lines == [f"ERROR [config] {work / 'config.yaml'}: omics.rna.kind: 'rnaseq' is not "
                     "allowed; use one of: counts, intensity, binary, beta, continuous"]
    assert "Traceback" not in proc.stderr


def test_bad_table_fails_its_rule_with_one_line_and_no_output(small_cohort: Path,
                                                              tmp_path: Path):
    work = copy_cohort(small_cohort, tmp_path / "badtable")
    p = work / "data" / "methylation.csv"
    lines = p.read_text().splitlines()
    cells = lines[5].split(",")
    cells[3] = "n.d."
    lines[5] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    proc = run_snakemake(work, "--until", "ingest")
    assert proc.returncode != 0
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR [ingest]")]
    assert err == [f"ERROR [ingest] data/methylation.csv: non-numeric cell at row 6, column 4 "
                   f"(feature '{cells[0]}'); 1 "
                   "such cell(s) in all. Fix or blank those cells (empty, NA and NaN mean "
                   "missing)"]
    assert not (work / "results" / "small" / "ingest" / "methylation.h5ad").exists()
    log = (work / "logs" / "ingest" / "small" / "methylation.log").read_text()
    assert "non-numeric cell at row 6" in log and "Traceback" not in log


def test_lint_and_format_are_clean():
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    lint = subprocess.run([str(bin_dir / "snakemake"), "--lint"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr
    fmt = subprocess.run([str(bin_dir / "snakefmt"), "--check", "Snakefile", "workflow/rules"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert fmt.returncode == 0, fmt.stderr
    ruff = subprocess.run([str(bin_dir / "ruff"), "check", "workflow/scripts", "tests"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ruff.returncode == 0, ruff.stdout[-3000:]


def test_long_steps_print_progress_to_the_terminal(finished_run: Path):
    """What, how far and about how long, on the terminal (and in the rule's log)."""
    import re

    seen = (finished_run / "terminal.txt").read_text()
    for pattern in (r"predict: outer fold 1/\d+ done \(inner choice: \w+\), ~\d+ (s|min) left",
                    r"predict: outer fold (\d+)/\1 done",
                    r"stability shard 1/\d+: resample \d+/\d+ \(each fitted to the outcome and \d+ "
                    r"permutations of it\), ~\d+",
                    r"random-forest importance: fold 2/\d+ done, ~\d+ (s|min) left"):
        assert re.search(pattern, seen), pattern
    log = (finished_run / "logs" / "predict" / "small.log").read_text()
    assert "predict: outer fold 1/" in log


def test_end_of_run_summary_quotes_the_run_tables(finished_run: Path):
    """make run ends with a summary; its figures are those of the run's tables."""
    from omix.summary import summary_lines

    res = finished_run / "results" / "small"
    text = "\n".join(summary_lines(res))
    ranked = pd.read_csv(res / "biomarkers" / "ranked.tsv", sep="\t")
    assert f"top biomarkers: {ranked['feature'].iloc[0]} ({ranked['omic'].iloc[0]})" in text
    m = pd.read_csv(res / "predict" / "metrics.tsv", sep="\t").set_index(["model", "metric"])
    p = m.loc[("inner_cv_choice", "auc")]
    assert f"AUC {p['mean']:.3f} (95% CI {p['ci_low']:.3f}-{p['ci_high']:.3f}" in text
    assert f"l2_features {m.loc[('l2_features', 'auc'), 'mean']:.3f}" in text
    n_clusters = pd.read_csv(res / "clusters.tsv", sep="\t")["cluster"].nunique()
    assert f"clusters: {n_clusters} (" in text
    assert "samples: 60," in text and "  report: " in text


def test_readme_rule_graph_is_current():
    """Every rule of the bundled run's DAG is a node of workflow/report/rulegraph.svg (the
    README's picture); ``make docs`` regenerates it."""
    import re
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    dag = subprocess.run([str(bin_dir / "snakemake"), "--rulegraph"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert dag.returncode == 0, dag.stderr[-2000:]
    rules = set(re.findall(r'label = "([a-z_]+)"', dag.stdout))
    drawn = set(re.findall(r">([a-z_]+)</text>", (ROOT / "workflow/report/rulegraph.svg")
                           .read_text()))
    assert len(rules) > 10 and rules == drawn, f"run make docs: {sorted(rules ^ drawn)}"


def test_inputs_are_not_modified(finished_run: Path, small_cohort: Path):
    for p in (small_cohort / "data").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (finished_run / "data" / p.relative_to(
                small_cohort / "data")).read_bytes()


def test_associations_find_planted_outcome_and_survival_factor(finished_run: Path,
                                                               small_cohort: Path):
    truth = pd.read_csv(small_cohort / "data" / "truth" / "factors.tsv", sep="\t", index_col=0)
    r = finished_run / "results" / "small"
    z = pd.read_csv(r / "mofa" / "factors.tsv", sep="\t", index_col=0).loc[truth.index]
    match = z.corrwith(truth["Factor1"]).abs().idxmax()  # the model's outcome factor
    t = pd.read_csv(r / "associations" / "associations.tsv", sep="\t").set_index(
        ["variable", "clinical"])
    assert t.loc[(match, "response"), "q"] < 0.001
    assert t.loc[(match, "survival"), "q"] < 0.05
    bias = pd.read_csv(r / "associations" / "bias.tsv", sep="\t", keep_default_na=False)
    assert list(bias["column"]) == ["site"] and bias["warning"].iloc[0] == ""


def test_cross_validated_survival_prediction_of_the_planted_survival_factor(
        finished_run: Path):
    r = finished_run / "results" / "small" / "predict"
    m = pd.read_csv(r / "survival_metrics.tsv", sep="\t").set_index("model")
    assert m.loc["factors", "metric"] == "c_index" and m.loc["factors", "n_folds"] == 15
    assert m.loc["factors", "mean"] > 0.65 and m.loc["baseline", "mean"] == 0.5
    preds = pd.read_csv(r / "survival_predictions.tsv", sep="\t")
    assert preds.groupby("repeat")["sample_id"].nunique().eq(60).all()  # each patient once
    first = preds[preds["repeat"] == 1]
    high = first[first["risk_group"] == "high"]
    low = first[first["risk_group"] == "low"]
    assert high["event"].mean() > low["event"].mean()     # the high-risk group dies more


def test_prediction_of_the_planted_outcome(finished_run: Path):
    r = finished_run / "results" / "small" / "predict"
    m = pd.read_csv(r / "metrics.tsv", sep="\t").set_index(["model", "metric"])
    assert m.loc[("baseline", "auc"), "mean"] == 0.5
    best = m[m["selected"]].index.get_level_values("model")[0]
    assert m.loc[(best, "auc"), "mean"] > 0.8
    assert m.loc[(best, "auc"), "ci_low"] <= m.loc[(best, "auc"), "mean"] <= m.loc[
        (best, "auc"), "ci_high"]
    preds = pd.read_csv(r / "predictions.tsv", sep="\t")
    assert {"sample_id", "repeat", "fold", "model", "observed", "predicted",
            "p_responder"} <= set(preds.columns)


def test_planted_truth_validation_on_the_small_cohort(finished_run: Path, small_cohort: Path):
    """Half the samples and a third of the features of the default synthetic cohort, so the
    bounds are looser than the issue's targets, which `make validate` measures (README)."""
    from omix.validate import validate

    t = validate(finished_run / "results" / "small", small_cohort / "data" / "truth")
    v = t.set_index("figure")
    assert v.loc["factor_abs_r_min", "value"] >= 0.85
    assert v.loc["precision_at_k", "value"] >= 0.8
    assert v.loc["ari_groups", "value"] >= 0.7
    assert v.loc["prediction_auc", "value"] > 0.8


def test_rule_logs_carry_no_mudata_or_model_file_warning(finished_run: Path):
    """Unique '<omic>:<feature>' var_names and mudata's coming default keep the logs free of
    mudata's warnings; mofapy2 no longer announces it replaces the (empty) temporary file."""
    logs = sorted((finished_run / "logs").rglob("*.log"))
    assert len(logs) >= 15
    noisy = [(p.name, ln) for p in logs for ln in p.read_text().splitlines()
             if ("mudata" in ln and "Warning" in ln) or "it will be replaced" in ln]
    assert not noisy, noisy[:5]


def test_leave_one_site_out_through_snakemake(small_cohort: Path, tmp_path: Path):
    """groups: site with predict.cv: leave_group_out, through the rules: every site held out
    once (prediction and survival), pooled rows plus one row per site in both metrics tables,
    predictions carry their site, and the site column is in the bias check without being
    listed under bias.columns."""
    work = copy_cohort(small_cohort, tmp_path / "logo")
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["groups"] = "site"
    cfg["bias"] = {"columns": []}
    cfg["predict"] = {**cfg["predict"], "cv": "leave_group_out"}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    r = "results/small"
    proc = run_snakemake(work, f"{r}/predict/metrics.tsv", f"{r}/predict/survival_metrics.tsv",
                         f"{r}/associations/bias.tsv", f"{r}/groups/associations.tsv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    sheet = pd.read_csv(work / cfg["samples"], sep="\t", index_col=0)
    sites = sorted(sheet["site"].dropna().unique())
    m = pd.read_csv(work / r / "predict" / "metrics.tsv", sep="\t")
    assert list(m.columns[-1:]) == ["group"]
    honest = m[(m["model"] == "inner_cv_choice") & (m["metric"] == "auc")].set_index("group")
    assert sorted(honest.index) == sorted(["all", *sites])
    assert honest.loc["all", "n_folds"] == len(sites)
    folds = pd.read_csv(work / r / "predict" / "metrics_per_fold.tsv", sep="\t")
    per_site = folds[folds["model"] == "inner_cv_choice"].set_index("group")["auc"]
    for s in sites:
        assert honest.loc[s, "mean"] == pytest.approx(per_site[s])
    assert honest.loc["all", "mean"] == pytest.approx(per_site.mean())
    preds = pd.read_csv(work / r / "predict" / "predictions.tsv", sep="\t")
    p = preds[preds["model"] == "factors"].set_index("sample_id")
    assert p.index.is_unique
    assert (p["group"] == sheet.loc[p.index, "site"]).all()
    surv = pd.read_csv(work / r / "predict" / "survival_metrics.tsv", sep="\t")
    assert sorted(surv.loc[surv["model"] == "factors", "group"]) == sorted(["all", *sites])
    bias = pd.read_csv(work / r / "associations" / "bias.tsv", sep="\t")
    assert list(bias["column"]) == ["site"]
    log = (work / "logs" / "predict" / "small.log").read_text()
    assert all(f"held-out group {s}, inner_cv_choice: auc" in log for s in sites)
    # MOFA+ groups: the fast engine, variance explained per site next to the pooled rows, the
    # per-site associations and each site's make-up by cluster
    restarts = pd.read_csv(work / r / "mofa" / "restarts.tsv", sep="\t")
    assert set(restarts["engine"]) == {"fast"}
    r2 = pd.read_csv(work / r / "mofa" / "variance_explained_groups.tsv", sep="\t")
    assert sorted(r2["group"].unique()) == sorted(["all", *sites])
    pooled = pd.read_csv(work / r / "mofa" / "variance_explained.tsv", sep="\t")
    np.testing.assert_allclose(r2.loc[r2["group"] == "all", "r2_percent"], pooled["r2_percent"])
    assert (r2.loc[r2["group"] != "all", "r2_percent"] > 0).any()
    assoc = pd.read_csv(work / r / "groups" / "associations.tsv", sep="\t")
    assert sorted(assoc["group"].unique()) == sites and "site" not in set(assoc["clinical"])
    comp = pd.read_csv(work / r / "groups" / "clusters.tsv", sep="\t")
    n_site = sheet["site"].value_counts()
    for s, n in comp.groupby("group")["n"].sum().items():
        assert n == n_site[s]
    np.testing.assert_allclose(comp.groupby("group")["share_of_group"].sum(), 1.0, rtol=1e-5)
    assert (work / r / "plots" / "variance_explained_groups.png").stat().st_size > 5000
    ilog = (work / "logs" / "integrate" / "small.log").read_text()
    assert f"MOFA+ groups: {len(sites)} ({', '.join(sites)})" in ilog
