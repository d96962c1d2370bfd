import warnings

import numpy as np
import pandas as pd
import pytest
from omix import stability as st
from omix.glm import logistic_enet


def data(n=80, d=200, seed=0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, d)), index=[f"S{i}" for i in range(n)],
                     columns=[f"v:f{j:03d}" for j in range(d)])
    y = pd.Series(np.where(2 * x.iloc[:, 0] + 2 * x.iloc[:, 1] + rng.normal(0, 1, n) > 0,
                           "a", "b"), index=x.index)
    return x, y


@pytest.mark.parametrize("solver", st.SOLVERS)
def test_planted_features_are_stable_and_significant_noise_is_not(solver):
    x, y = data(n=120)
    s = st.stability_summary(st.stability_counts(x, y, range(50), 5, solver=solver), 50)
    s = s.set_index("feature")
    assert s.loc[["v:f000", "v:f001"], "selection_probability"].min() > 0.8
    assert s.loc[["v:f000", "v:f001"], "q_value"].max() < 0.05
    noise = s.drop(index=["v:f000", "v:f001"])
    assert (noise["q_value"] < 0.05).sum() == 0
    assert ((s["q_value"] >= 0) & (s["q_value"] <= 1)).all()


def test_counts_do_not_depend_on_sharding():
    x, y = data(d=40)
    whole = st.stability_counts(x, y, range(12), 2)
    parts = pd.concat([st.stability_counts(x, y, range(i, 12, 3), 2) for i in range(3)])
    pd.testing.assert_frame_equal(st.stability_summary(whole, 12), st.stability_summary(parts, 12))


def test_shuffled_outcome_selects_nothing_significant():
    x, y = data(d=100)
    y = pd.Series(np.random.default_rng(1).permutation(y.to_numpy()), index=y.index)
    s = st.stability_summary(st.stability_counts(x, y, range(30), 5), 30)
    assert (s["q_value"] < 0.05).sum() == 0


def test_q_value_hand_example():
    counts = pd.DataFrame({"perm": [0, 0, 0, 1, 1, 1], "feature": ["a", "b", "c"] * 2,
                           "count": [10, 5, 0, 5, 0, 0]})
    s = st.stability_summary(counts, 10).set_index("feature")
    # t = 1.0: null has 0 >= 1.0, observed 1 -> FDR 0; t = 0.5: null 1, observed 2 -> 0.5
    assert s.loc["a", "q_value"] == 0.0 and s.loc["b", "q_value"] == 0.5
    assert s.loc["c", "q_value"] == 1.0 and s.loc["a", "selection_probability"] == 1.0


def test_rf_permutation_importance_finds_planted_features_on_held_out_samples():
    from omix.stability import rf_permutation_importance

    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.standard_normal((80, 100)), columns=[f"f{i}" for i in range(100)])
    y = pd.Series(np.where(x["f0"] + x["f1"] + 0.3 * rng.standard_normal(80) > 0, "yes", "no"))
    kw = {"trees": 60, "candidates": 20, "permutations": 3, "seed": 1}
    rf = rf_permutation_importance(x, y, **kw)
    top = rf.sort_values("rf_importance", ascending=False)["feature"].head(2)
    assert set(top) == {"f0", "f1"}
    assert (rf["rf_candidate_folds"] <= 10).all() and rf["rf_candidate_folds"].sum() == 200
    assert rf.equals(rf_permutation_importance(x, y, **kw))       # seeded
    noise = rf_permutation_importance(x, y.sample(frac=1, random_state=0).set_axis(y.index),
                                      **kw)
    assert noise["rf_importance"].max() < rf["rf_importance"].max() / 2


def test_coordinate_descent_solves_the_same_logistic_model_as_saga():
    """Two classes: IRLS with coordinate descent reaches saga's elastic-net logistic
    coefficients (same objective, balanced weights), so the same features are selected."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 300))
    y = np.where(x[:, :10].sum(axis=1) / 3 + rng.normal(size=200) > 0.5, "a", "b")
    xs = st._standardised(x)
    for penalty in (0.5, 2.0):
        c = st.logistic_c(y == "b", xs.shape[1], penalty)
        coef = logistic_enet(xs, y == "b", c, 0.5)[0]
        exact = LogisticRegression(solver="saga", C=c, l1_ratio=0.5, class_weight="balanced",
                                   max_iter=20000, tol=1e-8).fit(xs, y).coef_[0]
        np.testing.assert_allclose(coef, exact, atol=2e-3)
        assert np.array_equal(coef != 0, exact != 0)
        assert np.array_equal(st._selected_cd(xs, y, True, penalty, 0.5), exact != 0)


def test_coordinate_descent_selects_what_the_multinomial_model_selects():
    """Three classes: one model per class against the rest selects nearly what saga's one
    multinomial model selects, every planted feature included; the first to enter agrees."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 150))
    score = x[:, :9] @ np.kron(np.eye(3), np.ones(3)).T  # 3 features per class
    y = np.array(["A", "B", "C"])[np.argmax(score + rng.gumbel(size=(120, 3)), axis=1)]
    xs = st._standardised(x)
    cd = st._selected_cd(xs, y, True, 1.0, 0.5)
    saga = st._selected_saga(xs, y, True, 1.0, 0.5)
    assert cd[:9].all() and saga[:9].all()
    assert (cd & saga).sum() / (cd | saga).sum() > 0.6
    assert not st._selected_cd(xs, y, True, 100.0, 0.5).any()


def test_working_set_solver_meets_the_optimality_conditions_of_the_full_problem():
    """Wide and correlated (p >> n, a shared latent axis): the working-set solution satisfies
    the elastic-net logistic KKT conditions on every feature, not only those it visited, and
    agrees with saga's solution of the whole problem."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    latent = rng.normal(size=(150, 2))
    x = latent @ rng.normal(size=(2, 1500)) + rng.normal(size=(150, 1500))
    y = np.where(latent[:, 0] + 0.5 * rng.normal(size=150) > 0, "a", "b")
    xs = st._standardised(x)
    c, l1 = 0.05, 0.5
    coef = logistic_enet(xs, y == "b", c, l1, tol=1e-8, cd_tol=1e-10)[0]
    assert 0 < (coef != 0).sum() < 1500
    # KKT of sum_i cw_i logloss_i + (1/C) (l1 |b|_1 + (1 - l1) / 2 |b|^2), intercept free
    pos = y == "b"
    cw = np.where(pos, 150 / (2 * pos.sum()), 150 / (2 * (~pos).sum()))
    lin = xs @ coef
    b0 = np.log(np.sum(cw * pos) / np.sum(cw * ~pos))
    for _ in range(100):  # the intercept that zeroes the weighted score
        prob = 1 / (1 + np.exp(-(lin + b0)))
        b0 += np.sum(cw * (pos - prob)) / np.sum(cw * prob * (1 - prob))
    grad = xs.T @ (cw * (pos - 1 / (1 + np.exp(-(lin + b0))))) - (1 - l1) / c * coef
    zero = coef == 0
    assert np.abs(grad[zero]).max() <= l1 / c * (1 + 1e-3)
    np.testing.assert_allclose(grad[~zero], l1 / c * np.sign(coef[~zero]), rtol=1e-3)
    exact = LogisticRegression(solver="saga", C=c, l1_ratio=l1, class_weight="balanced",
                               max_iter=20000, tol=1e-8).fit(xs, y).coef_[0]
    np.testing.assert_allclose(coef, exact, atol=5e-3)


def test_median_imputer_matches_scikit_learn():
    """The fast median imputer learns scikit-learn's medians (odd and even counts, an empty
    column filled with 0, a constant one) and fills the same values."""
    from omix.impute import MedianImputer
    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(41, 30))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:, 3] = np.nan
    x[:, 4] = 2.5
    x[:20, 5] = np.nan
    ours, ref = MedianImputer().fit(x), SimpleImputer(strategy="median",
                                                      keep_empty_features=True).fit(x)
    np.testing.assert_array_equal(ours.statistics_, ref.statistics_)
    assert ours.statistics_[3] == 0.0
    xt = rng.normal(size=(5, 30))
    xt[0, :] = np.nan
    np.testing.assert_array_equal(ours.transform(xt), ref.transform(xt))
    np.testing.assert_array_equal(ours.fit_transform(x), ref.fit_transform(x))


@pytest.mark.parametrize("n", [7, 41, 600, 1201])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_medians_equal_numpys_nanmedian(n, dtype):
    """The imputer's medians are np.nanmedian's, bit for bit, on either side of the 600 rows
    where np.nanmedian changes method: odd and even counts of values, columns without a
    missing value, with one value, with none, infinite values, ties."""
    from omix.impute import column_medians

    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 60)).astype(dtype)
    x[rng.random(x.shape) < rng.random(60)] = np.nan   # each column its own missing rate
    x[:, 0] = rng.normal(size=n)                        # complete
    x[:, 1] = np.nan                                    # no value
    x[:, 2] = np.nan
    x[n // 2, 2] = 3.0                                  # one value
    x[: n // 3, 3] = np.inf
    x[: n // 3, 4] = -np.inf
    x[:, 5] = np.round(x[:, 5])                         # ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmedian on the empty column
        want = np.nanmedian(x, axis=0)
    got = column_medians(x)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[1]) and got[2] == 3.0


def test_block_auc_equals_scikit_learn_with_ties():
    """The vectorised AUC of the forest importance gives roc_auc_score's value per block, ties
    (equal probabilities, common for a forest) counted as half."""
    from omix.stability import block_auc
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for m in (5, 37):
        truth = np.arange(m) % 3 == 0
        scores = np.round(rng.random((40, m)), 1)             # many ties
        scores[0] = truth.astype(float)                      # perfect: 1
        scores[1] = 0.5                                      # all tied: 0.5
        ours = block_auc(truth, scores)
        ref = np.array([roc_auc_score(truth, s) for s in scores])
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-14)
        assert ours[0] == 1.0 and ours[1] == 0.5


@pytest.mark.parametrize("classification", [True, False])
def test_penalty_keeps_noise_out_at_every_cohort_size(classification):
    """The penalty is a multiple of the noise level, not a fixed C: on pure noise a fit lets
    in about as few features at 2,000 patients as at 100, while two planted features enter at
    both sizes; a fixed C (scikit-learn's, the former stability_c) lets noise in as n grows."""
    counts = {}
    for n in (100, 2000):
        rng = np.random.default_rng(n)
        xs = st._standardised(rng.normal(size=(n, 400)))
        signal = xs[:, 0] + xs[:, 1] + rng.normal(size=n)
        y = np.where(signal > 0, "a", "b") if classification else 50.0 * signal + 7.0
        assert st._selected_cd(xs, y, classification, 2.0, 0.5)[:2].all()
        noise = rng.permutation(y)
        counts[n] = st._selected_cd(xs, noise, classification, 2.0, 0.5).sum()
        if classification:
            fixed_c = logistic_enet(xs, noise == "b", 0.05, 0.5)[0]
            counts[n, "fixed C"] = int((fixed_c != 0).sum())
    assert counts[100] <= 2 and counts[2000] <= 2, counts
    if not classification:   # a constant outcome: no noise level, nothing selected
        assert not st._selected_cd(xs, np.full(len(xs), 3.0), False, 2.0, 0.5).any()
    if classification:
        assert counts[2000, "fixed C"] > 20 > counts[100, "fixed C"], counts


def test_logistic_c_puts_alpha_at_the_noise_level():
    """At the null model the balanced logistic score of a feature is
    |sum cw (y - 1/2) x| / (n / 4); C from logistic_c makes alpha = 4 / (C n) equal to
    penalty x its standard deviation x sqrt(2 log p), computed here from the definition."""
    rng = np.random.default_rng(0)
    pos = rng.random(300) < 0.2
    cw = np.where(pos, 300 / (2 * pos.sum()), 300 / (2 * (~pos).sum()))
    sd = 4 * np.sqrt(np.sum((cw * (pos - 0.5)) ** 2)) / 300
    c = st.logistic_c(pos, 1000, 1.5)
    assert 4 / (c * 300) == pytest.approx(1.5 * sd * np.sqrt(2 * np.log(1000)), rel=1e-12)
    # and sd is the spread of that score over pure-noise features, by simulation
    x = st._standardised(rng.normal(size=(300, 4000)))
    scores = x.T @ (cw * (pos - 0.5)) / (300 / 4)
    assert scores.std() == pytest.approx(sd, rel=0.05)
