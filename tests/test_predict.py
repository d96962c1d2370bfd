import contextlib
import io

import numpy as np
import pandas as pd
import pytest
from omix import mofa
from omix import predict as pr
from omix.errors import AnalysisError
from omix.io import omic_features
from omix.mofa import MofaOptions
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
    frozen, z = quiet(mofa.FrozenMofa.fit, mdata, MofaOptions(factors=3, seed=1))
    views = {v: pd.DataFrame(np.asarray(mdata.mod[v].X), index=mdata.mod[v].obs_names,
                             columns=omic_features(mdata, v)) for v in frozen.views}
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
    assert set(preds["model"]) == {"factors", "features", "both", "stacked", "l2_features",
                                   "random_forest", "inner_cv_choice", "baseline"}
    # the procedure row is, fold by fold, the candidate the inner CV chose
    choice = per[per["model"] == "inner_cv_choice"]
    for _, r in choice.iterrows():
        same = per[(per["model"] == r["chosen"]) & (per["fold"] == r["fold"])
                   & (per["repeat"] == r["repeat"])]
        assert same["auc"].iloc[0] == r["auc"]
    assert len(preds[preds["model"] == "factors"]) == len(y)  # each sample predicted once
    # the learning-curve point: in the per-fold table, never a patient's prediction
    assert (per["model"] == pr.SMALLER).sum() == 3 and pr.SMALLER not in set(preds["model"])
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
    _, z = quiet(mofa.FrozenMofa.fit, mdata, MofaOptions(factors=3, seed=1))
    est, imp, contrib = pr.final_model(mdata, y, z, "factors", pr.PredictOptions())
    assert list(imp["rank"]) == list(range(1, len(imp) + 1))
    assert imp["coefficient"].abs().is_monotonic_decreasing
    assert set(contrib["class"]) == {"R"}  # two classes: the log-odds of the last one
    x = z.loc[contrib.index].to_numpy()
    decision = est.best_estimator_.decision_function(x)
    np.testing.assert_allclose(contrib.drop(columns="class").sum(axis=1), decision, atol=1e-8)


@pytest.fixture(scope="module")
def three_classes(data):
    mdata, z, _ = data
    rng = np.random.default_rng(0)
    s = z[:, 0] + rng.normal(0, 0.4, len(z))
    return pd.Series(np.select([s < -0.5, s < 0.5], ["A", "B"], "C"), index=mdata.obs_names,
                     name="subtype")


def test_multi_class_endpoint_is_predicted_by_every_model(data, three_classes):
    """Three classes used to crash (liblinear has no multi-class mode in scikit-learn >= 1.8)."""
    mdata, _, _ = data
    opts = pr.PredictOptions(folds=3, repeats=1, inner_folds=3)
    per, preds = quiet(pr.nested_cv, mdata, three_classes, MofaOptions(factors=3, seed=1), opts)
    s = pr.summarise(per, 3).set_index(["model", "metric"])
    assert s.loc[("inner_cv_choice", "auc"), "mean"] > 0.8       # planted on Factor1
    assert s.loc[("baseline", "balanced_accuracy"), "mean"] < 0.5
    assert {"p_A", "p_B", "p_C"} <= set(preds.columns)
    np.testing.assert_allclose(preds[["p_A", "p_B", "p_C"]].sum(axis=1), 1.0, atol=1e-9)
    per_class = pr.per_class_metrics(preds, "inner_cv_choice").set_index("class")
    assert list(per_class.index) == ["A", "B", "C"]
    assert per_class["n"].to_dict() == three_classes.value_counts().to_dict()
    assert (per_class["auc_one_vs_rest"] > 0.7).all()


@pytest.mark.parametrize("model", pr.MODELS + pr.OPTIONAL_MODELS)
def test_multi_class_final_model_explains_the_predicted_class(data, three_classes, model):
    mdata, _, _ = data
    _, z = quiet(mofa.FrozenMofa.fit, mdata, MofaOptions(factors=3, seed=1))
    opts = pr.PredictOptions(folds=3, inner_folds=3, rf_trees=50)
    est, imp, contrib = pr.final_model(mdata, three_classes, z, model, opts)
    x = {"factors": z}.get(model)
    if x is None:
        x = pr.feature_table(mdata, list(mdata.obs_names))
        if model == "both":
            x = pd.concat([z, x], axis=1)
    x = x.loc[contrib.index]
    predicted = est.predict(x.to_numpy())
    assert list(contrib["class"]) == list(predicted)
    coef = pr.linear_coefficients(est)
    if coef is None:
        assert imp["coefficient"].isna().all() and (imp["importance"] >= 0).all()
        return
    assert coef.shape[0] == 3 and set(imp["class"]) <= {"A", "B", "C"}
    if model in ("factors", "l2_features"):  # all variables kept: the sum is the class score
        pipe = est.best_estimator_
        zx = pipe[:-1].transform(x.to_numpy())
        scores = zx @ coef.T + pr.intercepts(est)
        rows = np.searchsorted(pipe.classes_, predicted)
        top = [c for c in contrib.columns if c not in ("class", "intercept")]
        if len(top) == x.shape[1]:
            np.testing.assert_allclose(contrib[[*top, "intercept"]].sum(axis=1),
                                       scores[np.arange(len(rows)), rows], atol=1e-8)


def test_summarise_uses_the_corrected_resampled_t_and_keeps_bounded_metrics_inside_0_1():
    per = pd.DataFrame({"model": "factors", "repeat": 1, "fold": [1, 2, 3],
                        "auc": [1.0, 0.9, 1.0], "r2": [0.9, -0.5, 0.95],
                        "c_index": [0.73, 0.71, 0.84]})   # three held-out sites of ACC
    s = pr.summarise(per, folds=3).set_index("metric")
    assert s.loc["auc", "ci_high"] == 1.0 and s.loc["auc", "ci_low"] < 0.95
    assert s.loc["c_index", "ci_high"] == 1.0 and s.loc["c_index", "ci_low"] < 0.6
    # Nadeau & Bengio: var (1/J + n_test/n_train) SD^2, t with J - 1 df; 3 folds: ratio 1/2
    v = np.array([0.9, -0.5, 0.95])
    half = 4.302652729911275 * np.sqrt((1 / 3 + 1 / 2) * v.var(ddof=1))
    assert s.loc["r2", "ci_low"] == pytest.approx(v.mean() - half)
    assert s.loc["r2", "ci_high"] == pytest.approx(v.mean() + half)


def test_procedure_interval_widens_upwards_by_the_learning_curve_gain():
    """The inner-CV choice refitted on two thirds of each training part scores 0.08 lower on
    average: a log-linear learning curve puts the model refitted on everyone
    log(5/4)/log(3/2) x 0.08 higher than the 5-fold estimate, so the procedure's upper bound
    moves up by that much; its lower bound, the other rows and a loss (MAE) going the other
    way are handled as documented."""
    full, small = [0.80, 0.82, 0.78, 0.81, 0.79], [0.70, 0.72, 0.74, 0.73, 0.71]
    mae_full, mae_small = [1.0] * 5, [1.2] * 5
    per = pd.DataFrame({"model": [pr.CHOICE] * 5 + [pr.SMALLER] * 5 + ["l2_features"] * 5,
                        "repeat": 1, "fold": list(range(1, 6)) * 3,
                        "auc": full + small + full,
                        "mae": mae_full + mae_small + mae_full})
    s = pr.summarise(per, folds=5).set_index(["model", "metric"])
    gain = np.log(5 / 4) / np.log(3 / 2) * 0.08
    assert gain == pytest.approx(0.044, abs=0.001)
    choice, ref = s.loc[(pr.CHOICE, "auc")], s.loc[("l2_features", "auc")]
    assert choice["learning_gain"] == pytest.approx(gain)
    assert choice["ci_high"] == pytest.approx(ref["ci_high"] + gain)
    assert choice["ci_low"] == pytest.approx(ref["ci_low"])
    assert np.isnan(ref["learning_gain"])
    assert s.loc[(pr.SMALLER, "auc"), "role"] == "learning_curve"
    mae = s.loc[(pr.CHOICE, "mae")]
    assert mae["learning_gain"] == pytest.approx(-0.2 * np.log(5 / 4) / np.log(3 / 2))
    assert mae["ci_low"] == pytest.approx(1.0 + mae["learning_gain"])
    # no two-thirds rows (tables of older runs): nothing widened
    plain = pr.summarise(per[per["model"] != pr.SMALLER], folds=5).set_index(["model", "metric"])
    assert plain.loc[(pr.CHOICE, "auc"), "ci_high"] == pytest.approx(ref["ci_high"])


def test_survival_interval_is_widened_by_the_cox_models_learning_curve():
    """The Cox model on the factors refitted on two thirds of each training part (rows
    factors_two_thirds) scores 0.05 lower: the C-index interval of the factors row moves up by
    log(5/4)/log(3/2) x 0.05; the no-covariate baseline is left alone."""
    full, small = [0.70, 0.72, 0.68, 0.71, 0.69], [0.65, 0.67, 0.63, 0.66, 0.64]
    per = pd.DataFrame({"model": ["factors"] * 5 + [pr.SURV_SMALLER] * 5 + ["baseline"] * 5,
                        "repeat": 1, "fold": list(range(1, 6)) * 3,
                        "c_index": full + small + [0.5] * 5})
    s = pr.summarise(per, folds=5).set_index(["model", "metric"])
    plain = pr.summarise(per[per["model"] != pr.SURV_SMALLER], folds=5).set_index(
        ["model", "metric"])
    gain = np.log(5 / 4) / np.log(3 / 2) * 0.05
    f = s.loc[("factors", "c_index")]
    assert f["learning_gain"] == pytest.approx(gain)
    assert f["ci_high"] == pytest.approx(plain.loc[("factors", "c_index"), "ci_high"] + gain)
    assert f["ci_low"] == pytest.approx(plain.loc[("factors", "c_index"), "ci_low"])
    assert np.isnan(s.loc[("baseline", "c_index"), "learning_gain"])
    assert s.loc[(pr.SURV_SMALLER, "c_index"), "role"] == "learning_curve"


def test_numeric_endpoint_gets_the_same_candidates_choice_and_interval(data):
    mdata, z, _ = data
    rng = np.random.default_rng(1)
    y = pd.Series(2.0 * z[:, 0] + rng.normal(0, 0.5, len(z)), index=mdata.obs_names,
                  name="dose")
    opts = pr.PredictOptions(folds=3, repeats=1, inner_folds=3, rf_trees=50)
    per, preds = quiet(pr.nested_cv, mdata, y, MofaOptions(factors=3, seed=1), opts)
    s = pr.summarise(per, 3).set_index(["model", "metric"])
    assert s.loc[("inner_cv_choice", "r2"), "mean"] > 0.6
    assert s.loc[("inner_cv_choice", "r2"), "ci_low"] < s.loc[("inner_cv_choice", "r2"), "mean"]
    assert set(per.loc[per["model"] == "inner_cv_choice", "chosen"]) <= set(pr.MODELS)
    assert not any(c.startswith("p_") for c in preds.columns)
    assert pr.choose_final(pr.summarise(per, 3)) in pr.MODELS


def test_interval_does_not_collapse_when_every_fold_is_perfect():
    per = pd.DataFrame({"model": ["l2_features"] * 15 + ["baseline"] * 15, "repeat": 1,
                        "fold": list(range(1, 16)) * 2, "auc": [1.0] * 15 + [0.5] * 15})
    s = pr.summarise(per, folds=5).set_index("model")
    assert s.loc["l2_features", "ci_low"] == 1.0  # fold spread alone: no width at all
    s = pr.summarise(per, folds=5, n_min=23).set_index("model")
    # Wilson score bound at p = 1 over the 23 patients of the smaller class: n / (n + z^2)
    assert s.loc["l2_features", "ci_low"] == pytest.approx(23 / (23 + 1.959964**2))
    assert s.loc["l2_features", "ci_high"] == 1.0
    assert s.loc["baseline", "ci_low"] == s.loc["baseline", "ci_high"] == 0.5
    lo, hi = pr.wilson(0.8, 50)
    assert (lo, hi) == pytest.approx((0.6696, 0.8876), abs=1e-4)  # textbook value


@pytest.mark.parametrize("endpoint", ["binary", "three_classes", "numeric"])
def test_elastic_net_tunes_its_l1_share_inside_the_folds(endpoint):
    """The optional elastic_net candidate: C (alpha) and l1_ratio tuned together by the inner
    CV, chosen among the candidates, for every kind of endpoint."""
    rng = np.random.default_rng(4)
    x = pd.DataFrame(rng.normal(size=(150, 60)), columns=[f"v:{j}" for j in range(60)])
    s = x.iloc[:, :6].sum(axis=1).to_numpy() / 2 + rng.normal(0, 0.5, 150)
    y = pd.Series({"binary": np.where(s > 0, "R", "N"),
                   "three_classes": np.select([s < -0.6, s < 0.6], ["A", "B"], "C"),
                   "numeric": s}[endpoint], name="y")
    opts = pr.PredictOptions(folds=3, repeats=1, inner_folds=3, l1_ratios=(0.3, 0.9),
                             models=("features", "elastic_net"))
    per = pr.nested_cv_matrix(x, y, opts)
    summary = pr.summarise(per, 3).set_index(["model", "metric"])
    metric = "r2" if endpoint == "numeric" else "auc"
    floor = {"binary": 0.85, "three_classes": 0.75, "numeric": 0.5}[endpoint]
    assert summary.loc[("elastic_net", metric), "mean"] > floor
    assert set(per.loc[per["model"] == "inner_cv_choice", "chosen"]) <= {"features",
                                                                         "elastic_net"}
    kind = "regression" if endpoint == "numeric" else "classification"
    est = pr.estimator(kind, "elastic_net", opts, 3, y.nunique() if kind != "regression" else 0)
    est.fit(x.to_numpy(), y.to_numpy())
    assert est.best_params_["est__l1_ratio"] in (0.3, 0.9)
    assert len(est.cv_results_["params"]) == 2 * len(opts.c_grid)


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_candidate_fits_use_one_blas_thread_in_joblib_workers_too(monkeypatch):
    """Snakemake sets OPENBLAS_NUM_THREADS to the rule's threads and joblib hands it to the
    worker processes of a grid search: inside the candidates' context they get one BLAS thread
    (two workers x two threads on two cores made each outer fold 2.5x slower)."""
    from joblib import Parallel, delayed

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    outside = Parallel(n_jobs=2)(delayed(_blas_threads)() for _ in range(2))
    with pr._one_blas_thread():
        inside = Parallel(n_jobs=2)(delayed(_blas_threads)() for _ in range(2))
        assert _blas_threads() == 1
    assert outside == [2, 2] and inside == [1, 1]


def _sites_cohort(shift):
    """planted() with three sites; site C reads the label-carrying features a0-a9 ``shift``
    units high (a planted site effect)."""
    mdata, z, samples = planted(n=150, seed=2)
    rng = np.random.default_rng(0)
    y = pd.Series(np.where(z[:, 0] + rng.normal(0, 0.4, len(z)) > 0, "R", "N"), index=samples,
                  name="resp")
    site = pd.Series(np.array(["A", "B", "C"])[np.arange(150) % 3], index=samples, name="site")
    a = mdata.mod["a"]
    rows = np.flatnonzero(site.reindex(a.obs_names).to_numpy() == "C")
    x = np.asarray(a.X, dtype=float).copy()
    x[np.ix_(rows, np.arange(10))] += shift
    a.X = x
    return mdata, y, site


def test_leave_group_out_holds_out_each_site_and_shows_a_planted_site_effect():
    """predict.cv leave_group_out: one outer fold per site holding out exactly that site's
    patients.  Where site C's measurements are shifted, its held-out accuracy collapses while
    the other sites keep theirs; without the shift site C predicts as well as the others.
    The per-site rows of metrics.tsv carry those values."""
    opts = pr.PredictOptions(cv="leave_group_out", inner_folds=3,
                             models=("factors", "l2_features"))
    results = {}
    for shift in (0.0, 4.0):
        mdata, y, site = _sites_cohort(shift)
        results[shift] = quiet(pr.nested_cv, mdata, y, MofaOptions(factors=3, seed=1), opts,
                               groups=site)
    per, preds = results[4.0]
    assert list(per.loc[per["model"] == "factors", "group"]) == ["A", "B", "C"]
    assert set(per["repeat"]) == {1}
    assert list(per.loc[per["model"] == "factors", "fold"]) == [1, 2, 3]
    held = preds[preds["model"] == "factors"]
    assert len(held) == 150 and held["sample_id"].is_unique
    assert (held["group"].to_numpy() == site.loc[held["sample_id"]].to_numpy()).all()

    def bacc(per):
        return per[per["model"] == "factors"].set_index("group")["balanced_accuracy"]

    shifted, clean = bacc(per), bacc(results[0.0][0])
    assert shifted["C"] < 0.7 and shifted["A"] > 0.75 and shifted["B"] > 0.75, shifted
    assert clean["C"] > 0.8, clean
    rows_g = pr.per_group_rows(per, {"A": 20, "B": 20, "C": 20}).set_index(
        ["model", "metric", "group"])
    assert rows_g.loc[("factors", "balanced_accuracy", "C"), "mean"] == shifted["C"]
    auc_a = rows_g.loc[("factors", "auc", "A")]
    assert auc_a["ci_low"] < auc_a["mean"] <= auc_a["ci_high"]
    # the pooled summary: one fold per site
    s = pr.summarise(per, 3).set_index(["model", "metric"])
    assert s.loc[("factors", "balanced_accuracy"), "n_folds"] == 3
    assert s.loc[("factors", "balanced_accuracy"), "mean"] == pytest.approx(shifted.mean())


def test_leave_group_out_needs_every_patient_in_a_group(data):
    mdata, _, y = data
    site = pd.Series("A", index=y.index, name="site")
    site.iloc[::2] = "B"
    site.iloc[:4] = np.nan
    opts = pr.PredictOptions(cv="leave_group_out")
    with pytest.raises(AnalysisError, match="4 of 90 patients have no value in the groups "
                                            "column 'site'"):
        pr.nested_cv(mdata, y, MofaOptions(factors=3), opts, groups=site)
    site = pd.Series(np.where(y == "R", "A", "B"), index=y.index, name="site")
    with pytest.raises(AnalysisError, match="without group 'A' of 'site' the training "
                                            "patients have no patient of class 'R'"):
        pr.nested_cv(mdata, y, MofaOptions(factors=3), opts, groups=site)
