"""New-cohort mode: the frozen bundle scores a validation cohort without refitting anything."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake, split_cohort
from omix import bundle, mofa
from omix.ingest import ingest_omic
from omix.io import omic_features, read_sample_sheet
from omix.pp import Normalizer, OmicOptions, normalize_omic


@pytest.mark.parametrize(("omic", "options"), [
    ("rna", {}), ("mutations", {}), ("protein", {}), ("metabolites", {}), ("methylation", {}),
    ("metabolites", {"impute": "min_prob"}), ("metabolites", {"pqn": False, "impute": "none"}),
    ("rna", {"library_size": False})])
def test_frozen_transform_reproduces_discovery_normalisation(small_cohort: Path, omic: str,
                                                             options: dict):
    """New samples go through exactly the discovery's transform: fed the discovery's own raw
    data, the bundle's normaliser gives back its normalised matrix, bit for bit; each patient
    alone or among others gets the same values."""
    cfg = yaml.safe_load((small_cohort / "config.yaml").read_text())
    ocfg = {**cfg["omics"][omic], **options}
    sheet = read_sample_sheet(small_cohort / cfg["samples"])
    raw = ingest_omic(small_cohort / ocfg["path"], kind=ocfg["kind"],
                      sample_ids=list(sheet.index), layout=ocfg["layout"], name=omic)
    norm = normalize_omic(raw, OmicOptions.from_config(ocfg), seed=5)
    if ocfg["kind"] == "intensity" and ocfg.get("impute") != "none":
        assert norm.layers["censored"].any()  # the case worth testing: censored cells
    # through the bundle's JSON, as apply reads it
    nz = Normalizer.from_json(json.loads(json.dumps(bundle.normalization_spec(norm))))
    x = pd.DataFrame(np.asarray(raw.X), index=raw.obs_names, columns=raw.var_names)
    t = nz.transform(x, name=omic)
    assert list(t.x.columns) == list(norm.var_names)
    assert t.info["model_features_missing"] == 0
    np.testing.assert_array_equal(t.x.to_numpy(), np.asarray(norm.X))
    for ids in (x.index[[4]], x.index[[9, 4, 0]], x.index[::-1]):
        np.testing.assert_array_equal(nz.transform(x.loc[ids], name=omic).x.to_numpy(),
                                      t.x.loc[ids].to_numpy())
    # a feature missing from the new table stays missing and is counted
    dropped = x.drop(columns=[norm.var_names[0]])
    t2 = nz.transform(dropped, name=omic)
    assert t2.info["model_features_missing"] == 1 and t2.x.iloc[:, 0].isna().all()


def test_feature_name_mismatch_names_the_exporters_change():
    from omix.score import feature_name_mismatch

    model = ["ENSG01", "ENSG02", "ENSG03"]
    assert feature_name_mismatch(model, ["ENSG01.4", "ENSG02.11", "ENSG03"]).startswith(
        "2 of the missing: they would match without version suffixes")
    assert feature_name_mismatch(["TP53", "EGFR"], ["tp53", "egfr"]).startswith(
        "2 of the missing: they would match ignoring upper/lower case")
    assert feature_name_mismatch(model, ["X1", "X2"]) is None


def test_scoring_refuses_a_table_with_none_of_the_model_features(small_cohort: Path, tmp_path,
                                                                 capfd):
    """A validation table whose feature names all differ from the model's (here: Ensembl-style
    version suffixes) is refused naming the cause, not scored as if the omic were missing;
    one lacking most of them is scored with a warning on the terminal."""
    from types import SimpleNamespace

    from omix.errors import InputDataError
    from omix.io import write_h5ad
    from omix.score import transform_cohort

    cfg = yaml.safe_load((small_cohort / "config.yaml").read_text())
    ocfg = cfg["omics"]["rna"]
    sheet = read_sample_sheet(small_cohort / cfg["samples"])
    raw = ingest_omic(small_cohort / ocfg["path"], kind=ocfg["kind"],
                      sample_ids=list(sheet.index), layout=ocfg["layout"], name="rna")
    norm = normalize_omic(raw, OmicOptions.from_config(ocfg), seed=5)
    spec = json.loads(json.dumps(bundle.normalization_spec(norm)))
    fake = SimpleNamespace(normalization={"rna": spec},
                           normalizers={"rna": Normalizer.from_json(spec)})
    versioned = raw.copy()
    versioned.var_names = [f"{f}.7" for f in raw.var_names]
    write_h5ad(versioned, tmp_path / "v.h5ad")
    with pytest.raises(InputDataError, match=r"omic rna: none of the model's \d+ features is in "
                                             r"the table \(\d+ of the missing: they would "
                                             r"match without version suffixes") as e:
        transform_cohort({"rna": tmp_path / "v.h5ad"}, fake)
    assert str(small_cohort / ocfg["path"]) in str(e.value)
    model = list(spec["features"])
    most = raw.copy()
    renamed = set(model[: int(0.6 * len(model)) + 1])
    most.var_names = [f"{f}.7" if f in renamed else f for f in raw.var_names]
    write_h5ad(most, tmp_path / "m.h5ad")
    views, table = transform_cohort({"rna": tmp_path / "m.h5ad"}, fake)
    assert int(table["model_features_missing"].iloc[0]) == len(renamed)
    err = capfd.readouterr().err
    assert f"WARNING rna: {len(renamed)} of the model's {len(model)} features are not in" in err
    assert "would match without version suffixes" in err


@pytest.fixture(scope="module")
def split_runs(split_run: Path, small_cohort: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, Path]:
    """The same discovery run again, from scratch, with a perturbed validation table."""
    b = split_cohort(small_cohort, tmp_path_factory.mktemp("splitB"), perturb=8.0)
    proc = run_snakemake(b)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return split_run, b


def test_validation_cohort_is_scored(split_run):
    work = split_run
    out = work / "results" / "small" / "apply" / "val"
    val = pd.read_csv(work / "data" / "validation.tsv", sep="\t", dtype=str)
    factors = pd.read_csv(out / "factors.tsv", sep="\t", dtype={"sample_id": str})
    assert list(factors["sample_id"]) == list(val["sample_id"])
    clusters = pd.read_csv(out / "clusters.tsv", sep="\t", dtype={"sample_id": str})
    disc = pd.read_csv(work / "results" / "small" / "clusters.tsv", sep="\t")
    assert set(clusters["cluster"]) <= set(disc["cluster"])
    assert clusters["agreement"].between(0, 1).all()
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"sample_id": str})
    assert {"predicted", "observed", "p_non_responder", "p_responder"} <= set(pred.columns)
    np.testing.assert_allclose(pred[["p_non_responder", "p_responder"]].sum(axis=1), 1.0)
    assert (pred["predicted"] == np.where(pred["p_responder"] > 0.5, "responder",
                                          "non_responder")).all()
    import joblib

    bundle_model = joblib.load(work / "results" / "small" / "model" / "predictor.joblib")
    cols = bundle_model["columns"]
    assert (pred["model_variables"] == len(cols)).all()
    assert pred["model_variables_missing"].between(0, len(cols)).all()
    if bundle_model["kind"] == "factors":
        assert (pred["model_variables_missing"] == 0).all()
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t").set_index("metric")
    assert metrics.loc["auc", "n"] == 20 and metrics.loc["auc", "value"] > 0.7
    drift = pd.read_csv(out / "drift.tsv", sep="\t")
    assert set(drift["level"]) == {"omic", "factor"} and not drift["warning"].any()
    drivers = pd.read_csv(out / "drivers.tsv", sep="\t", dtype={"sample_id": str})
    assert drivers.groupby("sample_id").size().max() == 5
    assert set(drivers["factor"]) <= set(factors.columns[1:]) | {"(direct)"}
    # every patient with a prediction has drivers: the measurements behind the leading factor,
    # or, when a measured feature leads, the measured features themselves
    contrib = pd.read_csv(out / "contributions.tsv", sep="\t", dtype={"sample_id": str})
    lead = contrib.groupby("sample_id")["variable"].first()
    assert set(drivers["sample_id"]) == set(lead.index)
    expect = lead.where(lead.str.startswith("Factor"), "(direct)")
    assert (drivers.groupby("sample_id")["factor"].first() == expect).all()
    direct = drivers[drivers["factor"] == "(direct)"]
    assert direct["value_sd_units"].notna().all()  # a driver was measured for that patient
    pages = sorted((out / "patients").glob("*.html"))
    assert len(pages) == 21  # 20 patients and the index
    first = val["sample_id"].iloc[0]
    page = (out / "patients" / f"{first}.html").read_text()
    assert "Stratum" in page and "<svg" in page and "response" in page
    assert ("Measurements behind Factor" in page) == (expect[first] != "(direct)")
    assert ("Measured variables behind the prediction" in page) == (expect[first] == "(direct)")
    imputed = pred[pred["model_variables_missing"] > 0]
    if len(imputed):
        r = imputed.iloc[0]
        page = (out / "patients" / f"{r['sample_id']}.html").read_text()
        assert (f"{r['model_variables_missing']} of {r['model_variables']} model variables were "
                "not measured") in page
    # the index: one row per patient with predicted class, its probability, observed, flags
    index = (out / "patients" / "index.html").read_text()
    assert "<th>predicted</th><th>probability</th><th>observed</th>" in index
    for _, r in pred.iterrows():
        prob = r[f"p_{r['predicted']}"]
        assert (f'<a href="{r["sample_id"]}.html">{r["sample_id"]}</a>' in index)
        assert (f"<td>{r['predicted']}</td><td class=\"num\">{prob:.2f}</td>"
                f"<td>{r['observed']}</td>") in index
    assert "@media print" in index and "@media print" in page  # one stylesheet, printable


def test_patient_pages_are_the_same_from_one_process_or_two(split_run, tmp_path):
    """The workflow renders the pages in two forked processes (`--cores 2`); one process
    writes the same bytes, page for page, and the log says how many processes ran."""
    from omix import bundle as bundle_mod
    from omix.pages import patient_pages

    out = split_run / "results" / "small" / "apply" / "val"
    log = (split_run / "logs" / "patient_report" / "small" / "val.log").read_text()
    assert "patient pages: 20 in" in log and "(2 process(es))" in log

    def read(k):
        return pd.read_csv(out / f"{k}.tsv", sep="\t", dtype={"sample_id": str})

    pages = patient_pages(
        tmp_path, bundle=bundle_mod.Bundle.load(split_run / "results" / "small" / "model"),
        factors=read("factors").set_index("sample_id"), clusters=read("clusters"),
        predictions=read("predictions"), contributions=read("contributions"),
        qc=read("qc").fillna({"flags": ""}), drift=read("drift"), cohort_name="val",
        drivers=read("drivers"), workers=1)
    assert len(pages) == 20
    for page in [*pages, tmp_path / "index.html"]:
        assert page.read_bytes() == (out / "patients" / page.name).read_bytes(), page.name


def test_projected_factors_match_a_model_fitted_on_all_patients(split_run, finished_run):
    work = split_run
    proj = pd.read_csv(work / "results" / "small" / "apply" / "val" / "factors.tsv", sep="\t",
                       dtype={"sample_id": str}).set_index("sample_id")
    full = pd.read_csv(finished_run / "results" / "small" / "mofa" / "factors.tsv", sep="\t",
                       dtype={"sample_id": str}).set_index("sample_id").loc[proj.index]
    r2 = pd.read_csv(work / "results" / "small" / "mofa" / "variance_explained.tsv", sep="\t")
    r2 = r2[r2["factor"] != "total"].groupby("factor")["r2_percent"].max()
    matched = mofa.matched_correlation(proj, full)
    strong = r2[r2 >= 5].index            # factors with structure (>= 5 % in some omic)
    assert len(strong) >= 3
    assert (matched[strong] >= 0.95).all(), matched


@pytest.mark.slow
def test_no_statistic_of_the_validation_cohort_enters_the_bundle(split_runs):
    a, b = split_runs
    files = ["manifest.json", "normalization.json", "frozen.json", "predictor.joblib"]
    for f in files:
        fa = (a / "results" / "small" / "model" / f).read_bytes()
        fb = (b / "results" / "small" / "model" / f).read_bytes()
        assert hashlib.sha256(fa).digest() == hashlib.sha256(fb).digest(), f
    # ... while the validation outputs did change: the protein table differed
    da = pd.read_csv(a / "results/small/apply/val/drift.tsv", sep="\t").set_index("name")
    db = pd.read_csv(b / "results/small/apply/val/drift.tsv", sep="\t").set_index("name")
    assert db.loc["protein", "fraction_outside_range"] > da.loc["protein", "fraction_outside_range"]
    assert db.loc["protein", "warning"]


def test_tampered_bundle_is_refused(split_run, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(split_run / "results" / "small" / "model", copy)
    bundle.Bundle.load(copy)
    doc = (copy / "frozen.json").read_text()
    (copy / "frozen.json").write_text(doc.replace('"n_neighbors": 15', '"n_neighbors": 14'))
    with pytest.raises(bundle.ConfigError, match="does not match its checksum"):
        bundle.Bundle.load(copy)


def test_old_bundle_format_is_refused_with_what_to_do(split_run, tmp_path):
    """A bundle written before the Normalizer (no format number) is an error, not a guess."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(split_run / "results" / "small" / "model", copy)
    norm = json.loads((copy / "normalization.json").read_text())
    for d in norm.values():
        d.pop("format")
    (copy / "normalization.json").write_text(json.dumps(norm))
    man = json.loads((copy / "manifest.json").read_text())
    man["files"]["normalization.json"] = hashlib.sha256(
        (copy / "normalization.json").read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(bundle.ConfigError) as err:
        bundle.Bundle.load(copy)
    assert "written by an older version of this workflow" in err.value.one_line()
    assert "Re-run the discovery workflow to rebuild its model bundle" in err.value.one_line()


def test_holdout_split_is_stratified_disjoint_and_seeded():
    from omix.holdout import split

    sheet = pd.DataFrame({"y": ["a"] * 30 + ["b"] * 15 + [None] * 6},
                         index=[f"P{i:02d}" for i in range(51)])
    disc, held = split(sheet, "y", 1 / 3, seed=0)
    assert len(set(disc) & set(held)) == 0 and len(disc) + len(held) == 51
    counts = sheet.loc[held, "y"].fillna("none").value_counts()
    assert counts.to_dict() == {"a": 10, "b": 5, "none": 2}
    assert list(held) == sorted(held)                  # sheet order kept
    assert split(sheet, "y", 1 / 3, seed=0)[1].equals(held)
    assert not split(sheet, "y", 1 / 3, seed=1)[1].equals(held)


def test_fold_normalisation_uses_training_patients_only(small_cohort: Path):
    """Inside a CV fold the held-out patients are transformed with parameters fitted on the
    training patients: perturbing held-out raw values changes nothing of the training data."""
    from omix.predict import FoldData

    cfg = yaml.safe_load((small_cohort / "config.yaml").read_text())
    sheet = read_sample_sheet(small_cohort / cfg["samples"])
    raw = {o: ingest_omic(small_cohort / t["path"], kind=t["kind"],
                          sample_ids=list(sheet.index), layout=t["layout"], name=o)
           for o, t in cfg["omics"].items() if o in ("rna", "metabolites")}
    ids = list(sheet.index)
    tr, te = ids[:40], ids[40:]
    fd = FoldData(None, raw=raw, omic_cfg=cfg["omics"], sheet=sheet)
    m1, held1 = fd.split(tr, te)
    bumped = {o: a.copy() for o, a in raw.items()}
    for a in bumped.values():
        rows = a.obs_names.isin(te)
        a.X[rows] = a.X[rows] * 3.0
    m2, held2 = FoldData(None, raw=bumped, omic_cfg=cfg["omics"], sheet=sheet).split(tr, te)
    for o in raw:
        assert list(m1.mod[o].obs_names) == [s for s in tr if s in raw[o].obs_names]
        np.testing.assert_array_equal(np.asarray(m1.mod[o].X), np.asarray(m2.mod[o].X))
        assert list(held1[o].index) == te
    # a held-out sample's own scale is removed by its own library size (counts) and PQN
    # quotient (metabolites), with the training patients' target and reference
    for o in raw:
        np.testing.assert_allclose(held1[o].to_numpy(), held2[o].to_numpy(), rtol=1e-9,
                                   atol=1e-9, equal_nan=True)


def test_projection_of_the_discovery_patients_keeps_the_factor_scale(finished_run):
    """The frozen projection is MOFA+'s own factor update (E[w^2] on the diagonal): the
    discovery patients projected from their normalised data spread like their fitted factors
    (with E[w]^2 instead, weak factors came out up to 1.3x wider)."""
    import mudata as md

    r = finished_run / "results" / "small"
    b = bundle.Bundle.load(r / "model")
    m = md.read_h5mu(r / "small.h5mu")
    fitted = pd.DataFrame(m.obsm["X_mofa"], index=m.obs_names, columns=b.frozen["factors"])
    views = {v: pd.DataFrame(np.asarray(m.mod[v].X), index=m.mod[v].obs_names,
                             columns=omic_features(m, v)) for v in b.mofa.views}
    proj = b.mofa.project(views).loc[fitted.index]
    ratio = proj.std() / fitted.std()
    assert ratio.between(0.98, 1.02).all(), ratio.round(3).to_dict()


def _fails_on_odd_training_parts(tr_s, te_s, f_tr, held, z_tr, z_te, n_jobs=1):
    from omix.errors import AnalysisError

    if len(tr_s) % 2:   # 7 folds of 60 patients: training parts of 51 (4 folds) and 52 (3)
        raise AnalysisError("planted failure", where="outer fold")
    return len(tr_s)


def _killed_on_the_last_fold(tr_s, te_s, f_tr, held, z_tr, z_te, n_jobs=1):
    import os
    import signal

    if len(tr_s) == 52:
        os.kill(os.getpid(), signal.SIGKILL)   # as the kernel's out-of-memory killer does
    return len(tr_s)


def _fold_data_of(small_cohort: Path, omics: tuple[str, ...]) -> tuple[object, list[str]]:
    """The raw (ingested) tables of ``omics`` as the nested CV's fold data, and the ids."""
    from types import SimpleNamespace

    from omix.predict import FoldData

    cfg = yaml.safe_load((small_cohort / "config.yaml").read_text())
    sheet = read_sample_sheet(small_cohort / cfg["samples"])
    raw = {o: ingest_omic(small_cohort / t["path"], kind=t["kind"],
                          sample_ids=list(sheet.index), layout=t["layout"], name=o)
           for o, t in cfg["omics"].items() if o in omics}
    return FoldData(SimpleNamespace(), raw=raw, omic_cfg=cfg["omics"], sheet=sheet), list(
        sheet.index)


@pytest.mark.parametrize("task, message", [
    (_fails_on_odd_training_parts, "^outer fold: planted failure$"),
    (_killed_on_the_last_fold, r"^outer fold \d+/7: a worker process of the nested "
                               r"cross-validation died .* --set-threads predict=1"),
])
def test_a_fold_failing_in_a_worker_stops_the_run_with_its_message(small_cohort: Path, task,
                                                                   message: str):
    """An error in a forked fold worker reaches the rule as the same one-line error; a worker
    killed by the system (out of memory) as an error saying so, not a run waiting for ever for
    its fold; no worker process is left behind."""
    import multiprocessing

    from omix.errors import AnalysisError
    from omix.predict import _mofa_folds
    from sklearn.model_selection import KFold

    fd, ids = _fold_data_of(small_cohort, ("rna",))
    opts = mofa.MofaOptions(factors=2, iterations=20, seed=1)
    with pytest.raises(AnalysisError, match=message):
        list(_mofa_folds(ids, np.zeros(len(ids)), KFold(7, shuffle=True, random_state=0), fd,
                         opts, n_jobs=2, task=task))
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "loky"])
def test_folds_fitted_in_worker_processes_equal_folds_fitted_in_turn(small_cohort: Path,
                                                                      tmp_path: Path, fork: bool,
                                                                      monkeypatch):
    """The outer folds' normalisation + MOFA+ fits run two at a time in worker processes
    (predict's threads; forked on Linux, loky workers where forking is unsafe): the same
    training tables, held-out tables and factors, bit for bit, as one after the other in the
    rule's process; the workers' output goes to the log."""
    import logging

    from omix import predict
    from omix.errors import setup_logging
    from omix.predict import _mofa_folds
    from sklearn.model_selection import KFold

    monkeypatch.setattr(predict, "FORK_WORKERS", fork)
    fd, ids = _fold_data_of(small_cohort, ("rna", "metabolites"))
    opts = mofa.MofaOptions(factors=3, iterations=50, seed=1)
    split = KFold(3, shuffle=True, random_state=0)
    log_file = tmp_path / "predict.log"
    setup_logging(log_file)
    try:
        serial = list(_mofa_folds(ids, np.zeros(len(ids)), split, fd, opts, n_jobs=1))
        parallel = list(_mofa_folds(ids, np.zeros(len(ids)), split, fd, opts, n_jobs=2))
    finally:
        logging.getLogger("omix").handlers.clear()
    assert len(serial) == len(parallel) == 3
    for (tr_a, te_a, a), (tr_b, te_b, b) in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(tr_a, tr_b)
        np.testing.assert_array_equal(te_a, te_b)
        pd.testing.assert_frame_equal(a[0], b[0])                     # training features
        for o in a[1]:
            pd.testing.assert_frame_equal(a[1][o], b[1][o])           # held-out tables
        pd.testing.assert_frame_equal(a[2], b[2])                     # training factors
        pd.testing.assert_frame_equal(a[3], b[3])                     # held-out factors
        assert a[2].shape[1] >= 1 and len(a[3]) == len(te_b)
    text = log_file.read_text()
    assert text.count("features_in=") >= 2 * 3 * len(fd.raw)   # the workers' log lines arrive


def test_validation_classes_spelt_another_way_are_refused_and_new_ones_left_out(capfd):
    """A validation sheet writing 'responder' where the model says 'Responder' would be scored
    as a class the model never predicts (AUC and accuracy silently wrong): refused, naming the
    two spellings.  A class the discovery cohort did not have is left out of the metrics with
    a terminal warning, and the metrics are those of the other patients."""
    from omix.errors import AnalysisError
    from omix.predict import _metrics
    from omix.score import score_metrics

    rng = np.random.default_rng(0)
    ids = [f"V{i}" for i in range(40)]
    truth = np.array(["Responder", "Non-responder"] * 20)
    p = np.clip(np.where(truth == "Responder", 0.7, 0.3) + rng.normal(0, 0.25, 40), 0.01, 0.99)
    pred = pd.DataFrame({"sample_id": ids, "predicted": np.where(p > 0.5, "Responder",
                                                                 "Non-responder"),
                         "p_Non-responder": 1 - p, "p_Responder": p})
    y = pd.Series(truth, index=ids, name="response")
    spelt = y.copy()
    spelt.iloc[[0, 2, 4]] = "responder"
    with pytest.raises(AnalysisError, match="outcome column 'response': class 'responder' "
                                            r"\(3 patients\) is the model's class 'Responder' "
                                            "spelt another way"):
        score_metrics(pred, spelt)
    new = y.copy()
    new.iloc[[1, 3]] = "stable disease"
    m = score_metrics(pred, new).set_index("metric")
    assert "WARNING outcome column 'response': 2 patient(s) have class(es) the model does " \
           "not know ('stable disease'); the metrics leave them out" in capfd.readouterr().err
    keep = ~np.isin(np.arange(40), [1, 3])
    ref = _metrics("classification", truth[keep], pred["predicted"].to_numpy()[keep],
                   pred[["p_Non-responder", "p_Responder"]].to_numpy()[keep],
                   ["Non-responder", "Responder"])
    assert m.loc["auc", "n"] == 38
    assert m.loc["auc", "value"] == pytest.approx(ref["auc"])
    assert 0.6 < ref["auc"] < 1.0
    # numeric classes are not compared by spelling: 1.0 and 10.0 stay different classes
    num = pred.rename(columns={"p_Non-responder": "p_0.0", "p_Responder": "p_1.0"})
    num["predicted"] = np.where(p > 0.5, "1.0", "0.0")
    yn = pd.Series(np.where(truth == "Responder", 1.0, 0.0), index=ids, name="r")
    yn.iloc[5] = 10.0
    assert score_metrics(num, yn).set_index("metric").loc["auc", "n"] == 39


def test_a_numeric_endpoint_observed_as_text_is_refused():
    from omix.errors import AnalysisError
    from omix.score import score_metrics

    ids = ["A", "B", "C", "D"]
    pred = pd.DataFrame({"sample_id": ids, "predicted": [0.2, 0.5, 0.4, 0.9]})
    m = score_metrics(pred, pd.Series([0.1, 0.6, 0.3, 1.0], index=ids, name="purity"))
    assert m.set_index("metric").loc["r2", "n"] == 4
    with pytest.raises(AnalysisError, match="outcome column 'purity' holds text in 2 of 4 "
                                            "patients but the model predicts a number"):
        score_metrics(pred, pd.Series([0.1, "high", 0.3, "low"], index=ids, name="purity"))
