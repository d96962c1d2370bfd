import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from omix import predict as pr
from omix.errors import AnalysisError
from omix.tl import MofaOptions
from test_tl import planted


@pytest.fixture(scope="module")
def data():
    mdata, z, samples = planted(n=90, seed=2)
    rng = np.random.default_rng(0)
    y = pd.Series(np.where(z[:, 0] + rng.normal(0, 0.4, len(z)) > 0, "R", "N"), index=samples,
                  name="resp")
    return mdata, z, y


def quiet(fn, *a, **k):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a, **k)


def test_projection_of_training_samples_matches_the_fitted_factors(data):
    mdata, _, _ = data
    frozen, z = quiet(pr.FrozenMofa.fit, mdata, MofaOptions(factors=3, seed=1))
    views = {v: pd.DataFrame(np.asarray(mdata.mod[v].X), index=mdata.mod[v].obs_names,
                             columns=mdata.mod[v].var_names) for v in frozen.views}
    proj = frozen.project(views).loc[z.index]
    for f in z.columns:
        if z[f].std() > 1e-6:
            assert np.corrcoef(proj[f], z[f])[0, 1] > 0.98, f
    # a sample that lacks view b is placed from view a alone
    only_a = {"a": views["a"].iloc[:5]}
    assert frozen.project(only_a).shape == (5, z.shape[1])


def test_nested_cv_predicts_the_planted_label_and_not_a_shuffled_one(data):
    mdata, _, y = data
    opts = pr.PredictOptions(folds=3, repeats=1, inner_folds=3)
    per, preds = quiet(pr.nested_cv, mdata, y, MofaOptions(factors=3, seed=1), opts)
    s = pr.summarise(per).set_index(["model", "metric"])
    assert s.loc[("factors", "auc"), "mean"] > 0.85
    assert s.loc[("baseline", "auc"), "mean"] == 0.5
    assert set(preds["model"]) == {"factors", "features", "both", "baseline"}
    assert len(preds[preds["model"] == "factors"]) == len(y)  # each sample predicted once
    shuffled = pd.Series(np.random.default_rng(3).permutation(y.to_numpy()), index=y.index,
                         name="resp")
    per0, _ = quiet(pr.nested_cv, mdata, shuffled, MofaOptions(factors=3, seed=1), opts)
    assert pr.summarise(per0).set_index(["model", "metric"]).loc[("factors", "auc"),
                                                                 "mean"] < 0.7


def test_too_few_per_class_is_a_clear_error(data):
    mdata, _, y = data
    rare = y.copy()
    rare[:] = "N"
    rare.iloc[:3] = "R"
    with pytest.raises(AnalysisError, match="class 'R' has 3 samples; 5-fold outer and 3-fold "
                                            "inner cross-validation need at least 5 per class"):
        pr.nested_cv(mdata, rare, MofaOptions(factors=3), pr.PredictOptions())


def test_final_model_contributions_add_up_to_the_decision_function(data):
    mdata, _, y = data
    _, z = quiet(pr.FrozenMofa.fit, mdata, MofaOptions(factors=3, seed=1))
    est, imp, contrib = pr.final_model(mdata, y, z, "factors", pr.PredictOptions())
    assert list(imp["rank"]) == list(range(1, len(imp) + 1))
    assert imp["coefficient"].abs().is_monotonic_decreasing
    x = z.loc[contrib.index].to_numpy()
    decision = est.best_estimator_.decision_function(x)
    np.testing.assert_allclose(contrib.sum(axis=1), decision, atol=1e-8)


def test_summarise_keeps_bounded_metrics_inside_0_1():
    per = pd.DataFrame({"model": "factors", "repeat": 1, "fold": [1, 2, 3],
                        "auc": [1.0, 0.9, 1.0], "r2": [0.9, -0.5, 0.95]})
    s = pr.summarise(per).set_index("metric")
    assert s.loc["auc", "ci_high"] == 1.0 and s.loc["auc", "ci_low"] < 0.95
    se = np.std([0.9, -0.5, 0.95], ddof=1) / np.sqrt(3)
    assert s.loc["r2", "ci_low"] == pytest.approx(np.mean([0.9, -0.5, 0.95]) - 1.96 * se)
