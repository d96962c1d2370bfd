"""A multi-class endpoint end to end through snakemake: every step that uses the outcome.

The small synthetic cohort's planted groups (G1-G3, 20 patients each) become a ``subtype``
column; 40 patients are the discovery cohort, 20 are scored with the frozen bundle.  Three
classes used to crash ``predict`` (liblinear has no multi-class mode in scikit-learn >= 1.8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake, split_cohort

pytestmark = pytest.mark.slow  # make test-all (CI) runs it; make test does not

@pytest.fixture(scope="module")
def multiclass_run(small_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = split_cohort(small_cohort, tmp_path_factory.mktemp("multiclass"))
    groups = pd.read_csv(work / "data" / "truth" / "factors.tsv", sep="\t",
                         index_col="sample_id")["group"]
    # every 5th patient gets the next group's label: the planted groups alone are separable
    # by any single one of many features, which leaves no permutation importance to measure
    rotate = {"G1": "G2", "G2": "G3", "G3": "G1"}
    groups.iloc[::5] = groups.iloc[::5].map(rotate)
    for name in ("discovery.tsv", "validation.tsv"):
        p = work / "data" / name
        sheet = pd.read_csv(p, sep="\t", dtype=str)
        sheet["subtype"] = sheet["sample_id"].map(groups).str.replace("G", "subtype_")
        sheet.to_csv(p, sep="\t", index=False)
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["outcome"] = "subtype"
    cfg["predict"] = {"repeats": 1, "rf_trees": 100}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = run_snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


CLASSES = ["subtype_1", "subtype_2", "subtype_3"]


def test_prediction_reports_macro_and_per_class_metrics(multiclass_run: Path):
    r = multiclass_run / "results" / "small" / "predict"
    m = pd.read_csv(r / "metrics.tsv", sep="\t").set_index(["model", "metric"])
    assert m.loc[("inner_cv_choice", "auc"), "mean"] > 0.7         # planted groups
    assert m.loc[("baseline", "auc"), "mean"] == 0.5
    assert m.loc[("inner_cv_choice", "balanced_accuracy"), "mean"] > 1 / 3 + 0.2
    roles = m.reset_index().drop_duplicates("model").set_index("model")["role"]
    assert roles[["l2_features", "random_forest"]].eq("reference").all()
    per_class = pd.read_csv(r / "metrics_per_class.tsv", sep="\t")
    sel = per_class[per_class["model"] == "inner_cv_choice"].set_index("class")
    assert list(sel.index) == CLASSES and sel["n"].sum() == 40
    preds = pd.read_csv(r / "predictions.tsv", sep="\t")
    p = preds[[f"p_{c}" for c in CLASSES]]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=2e-6)  # TSVs keep 6 digits
    imp = pd.read_csv(r / "importance.tsv", sep="\t", keep_default_na=False)
    coef = imp[imp["coefficient"] != ""]
    assert set(coef["class"]) <= set(CLASSES)


def test_selection_and_clusters_use_the_classes(multiclass_run: Path):
    r = multiclass_run / "results" / "small"
    ranked = pd.read_csv(r / "biomarkers" / "ranked.tsv", sep="\t")
    assert ranked["selection_probability"].notna().all()
    assert ranked["q_value"].between(0, 1).all()
    assert np.isfinite(ranked["rf_importance"]).all() and (ranked["rf_importance"] > 0).any()
    cmp = pd.read_csv(r / "clusters_vs_outcome.tsv", sep="\t").set_index("metric")
    assert cmp.loc["ARI", "n_classes"] == 3 and cmp.loc["ARI", "value"] > 0.3
    sel = pd.read_csv(r / "cluster" / "resolution_selection.tsv", sep="\t")
    assert set(sel["method"]) == {"leiden", "pca_kmeans"}
    assert sel["ari_outcome"].notna().all() and 3 in set(sel["k"].dropna())
    chosen = sel[sel["chosen"]].iloc[0]
    assert chosen["method"] == "leiden" and chosen["ari_outcome"] == pytest.approx(
        cmp.loc["ARI", "value"], abs=1e-4)


def test_frozen_model_scores_new_patients_with_class_probabilities(multiclass_run: Path):
    out = multiclass_run / "results" / "small" / "apply" / "val"
    pred = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"sample_id": str})
    p = pred[[f"p_{c}" for c in CLASSES]]
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=2e-6)  # TSVs keep 6 digits
    assert (pred["predicted"] == p.idxmax(axis=1).str[2:]).all()
    assert pred["observed"].isin(CLASSES).all()
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t").set_index("metric")
    assert metrics.loc["auc", "n"] == 20 and metrics.loc["auc", "value"] > 0.7
    index = (out / "patients" / "index.html").read_text()
    first = pred["sample_id"].iloc[0]
    page = (out / "patients" / f"{first}.html").read_text()
    assert f"predicted <b>{pred['predicted'].iloc[0]}</b>" in page
    assert all(f"{c}: " in page for c in CLASSES) and first in index
