import filecmp
from pathlib import Path

import pandas as pd
from omix.synthetic import SyntheticSpec, generate, write

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_synthetic_cohort_is_what_the_generator_writes(tmp_path):
    write(SyntheticSpec(), tmp_path)
    bundled = ROOT / "resources" / "synthetic"
    names = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(names) == 9
    for rel in names:
        assert filecmp.cmp(tmp_path / rel, bundled / rel, shallow=False), rel


def test_planted_structure():
    g = generate(SyntheticSpec(n_samples=90, seed=3))
    sheet, tf, feats = g["sheet"], g["truth_factors"], g["truth_features"]
    assert len(sheet) == 90 and sheet["sample_id"].is_unique
    assert set(sheet["response"]) == {"responder", "non_responder"}
    # the outcome follows the planted outcome factor
    f1 = tf.set_index("sample_id")["Factor1"]
    resp = sheet.set_index("sample_id")["response"] == "responder"
    assert f1[resp].mean() > f1[~resp].mean() + 1.0
    # every view has planted features for every factor; metabolomics has censored zeros
    assert set(feats["omic"]) == {"rna", "mutations", "protein", "metabolites", "methylation"}
    assert feats.groupby("omic")["factor"].nunique().eq(3).all()
    assert (g["tables"]["metabolites"] == 0).to_numpy().mean() > 0.02
    assert pd.api.types.is_integer_dtype(g["tables"]["rna"].dtypes.iloc[0])
    assert g["tables"]["protein"].shape[0] < 90  # some samples lack the view


def test_zero_signal_plants_nothing():
    g = generate(SyntheticSpec(n_samples=40, signal=0.0))
    assert len(g["truth_features"]) == 0
    assert list(g["truth_features"].columns) == ["omic", "feature", "factor", "weight"]
