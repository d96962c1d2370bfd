"""The balanced lasso logistic model of omix.glm and its warm-started grid search."""

import itertools
import warnings

import numpy as np
import pytest
from omix.glm import L1Logistic, L1LogisticCV, entry_c, l1_path, logistic_enet, path_points
from omix.impute import MedianImputer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def wide(n=150, p=600, classes=2, seed=3):
    """p >> n, correlated through two latent axes, classes driven by the first."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    x = latent @ rng.normal(size=(2, p)) + rng.normal(size=(n, p))
    cuts = np.quantile(latent[:, 0], np.linspace(0, 1, classes + 1)[1:-1])
    y = np.array(list("abcdefg"))[np.searchsorted(cuts, latent[:, 0] + 0.3 * rng.normal(size=n))]
    xs = StandardScaler().fit_transform(x)
    return np.asfortranarray(xs), y


def objective(xs, pos, c, beta, b0):
    n = len(pos)
    cw = np.where(pos, n / (2 * pos.sum()), n / (2 * (~pos).sum()))
    eta = xs @ beta + b0
    return c * np.sum(cw * (np.logaddexp(0, eta) - pos * eta)) + np.abs(beta).sum()


@pytest.mark.parametrize("c", [0.02, 0.2, 2.0])
def test_l1_path_solves_the_balanced_lasso_logistic_model_saga_solves(c):
    """Each point of the warm-started path is scikit-learn's L1 logistic model (balanced
    weights, intercept not penalised): at a tight tolerance the path gives the cold solve's
    coefficients and saga's where saga converges (at C = 2 on 150 x 600 it does not, even in
    100,000 epochs, and stops at a higher objective); at the default tolerance (prediction's)
    the objective is within 1e-4 of the optimum."""
    xs, y = wide()
    pos = y == "b"
    k = [0.02, 0.2, 2.0].index(c)
    beta, b0 = l1_path(xs, pos, [0.02, 0.2, 2.0], cd_tol=1e-10)[k]
    loose = l1_path(xs, pos, [0.02, 0.2, 2.0])[k]
    cold, cold_b0 = logistic_enet(xs, pos, c, 1.0, tol=1e-10, cd_tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exact = LogisticRegression(solver="saga", C=c, l1_ratio=1.0, class_weight="balanced",
                                   max_iter=100000 if c < 1 else 5000, tol=1e-10).fit(xs, y)
    assert 0 < (beta != 0).sum() < xs.shape[1]
    np.testing.assert_allclose(beta, cold, atol=1e-6)
    if c < 1:
        np.testing.assert_allclose(beta, exact.coef_[0], atol=1e-6)
    best = objective(xs, pos, c, cold, cold_b0)
    assert best <= objective(xs, pos, c, exact.coef_[0], exact.intercept_[0]) * (1 + 1e-9)
    assert objective(xs, pos, c, beta, b0) == pytest.approx(best, rel=1e-9)
    assert best <= objective(xs, pos, c, *loose) <= best * (1 + 1e-4)


def test_the_path_enters_where_the_first_feature_does():
    """Below entry_c no feature enters; just above it the feature of the largest score at the
    null model (the intercept is refitted with the feature, so the exact point moves by a
    little); a warm-started solve is the cold solve's solution."""
    xs, y = wide()
    pos = y == "a"
    c0 = entry_c(xs, pos)
    assert not logistic_enet(xs, pos, 0.99 * c0, 1.0)[0].any()
    n = len(pos)
    cw = np.where(pos, n / (2 * pos.sum()), n / (2 * (~pos).sum()))
    score = np.abs(xs.T @ (cw * (pos - 0.5)))
    assert c0 == pytest.approx(1 / score.max(), rel=1e-12)
    entered = np.flatnonzero(logistic_enet(xs, pos, 1.03 * c0, 1.0)[0])
    assert entered.tolist() == [int(np.argmax(score))]
    cold = logistic_enet(xs, pos, 1.0, 1.0, tol=1e-8, cd_tol=1e-10)[0]
    warm = l1_path(xs, pos, [0.05, 1.0], cd_tol=1e-10)[1][0]
    np.testing.assert_allclose(warm, cold, atol=1e-6)


def test_path_points_pass_every_c_in_steps_of_half_a_decade():
    """From the entry point up, then between the Cs, no step exceeds sqrt(10); every C is on
    the path and marked; a path to a smaller C passes the same points."""
    pts = path_points(0.0004, [0.01, 0.1, 2.0, 3.0])
    cs = [c for c, _ in pts]
    assert [c for c, wanted in pts if wanted] == [0.01, 0.1, 2.0, 3.0]
    assert cs[0] == pytest.approx(0.0004 * 10 ** 0.5) and cs == sorted(cs)
    assert max(b / a for a, b in itertools.pairwise(cs)) <= 10 ** 0.5 * (1 + 1e-12)
    assert path_points(0.0004, [0.01, 0.1]) == pts[:len(path_points(0.0004, [0.01, 0.1]))]
    assert path_points(np.inf, [0.01]) == [(0.01, True)]   # no feature can enter


def test_a_start_far_from_the_solution_converges_to_it():
    """Newton steps from a poor start overshoot (without the step halving the objective went
    from 22 to about 2 million here, as one inner fold of the 1,000-patient scale cohort did
    at C = 1): every start reaches the cold solve's objective."""
    xs, y = wide(n=120, p=300, seed=0)
    pos = y == "b"
    cold = logistic_enet(xs, pos, 1.0, 1.0)
    rng = np.random.default_rng(0)
    for scale in (0.3, 1.0, 3.0):
        init = (rng.normal(size=300) * (rng.random(300) < 0.1) * scale, 0.0)
        beta, b0 = logistic_enet(xs, pos, 1.0, 1.0, init=init)
        assert objective(xs, pos, 1.0, beta, b0) == pytest.approx(
            objective(xs, pos, 1.0, *cold), rel=1e-4)


@pytest.mark.parametrize("classes", [2, 4])
def test_fit_path_gives_the_models_fitted_one_by_one(classes):
    """The models of one path are, bit for bit, those L1Logistic(C, path) fits on its own; two
    classes give one row of coefficients (the last class), more one row per class."""
    xs, y = wide(classes=classes)
    cs = [0.01, 0.1, 1.0]
    models = L1Logistic.fit_path(xs, y, cs)
    for c, m in zip(cs, models, strict=True):
        one = L1Logistic(C=c, path=tuple(cs)).fit(xs, y)
        assert np.array_equal(m.coef_, one.coef_) and np.array_equal(m.intercept_, one.intercept_)
        assert m.coef_.shape == (1 if classes == 2 else classes, xs.shape[1])
    assert (models[0].coef_ != 0).sum() < (models[-1].coef_ != 0).sum()
    with pytest.raises(ValueError, match="ascending"):
        L1Logistic.fit_path(xs, y, [1.0, 0.1])


def test_probabilities_and_classes():
    """Two classes: the logistic of the decision function for the last class; more: the
    one-vs-rest probabilities normalised to one; predict is the most probable class."""
    xs, y = wide(classes=2)
    m = L1Logistic(C=0.5).fit(xs, y)
    d = m.decision_function(xs)
    np.testing.assert_allclose(m.predict_proba(xs)[:, 1], 1 / (1 + np.exp(-d)), rtol=1e-9)
    assert np.array_equal(m.predict(xs), np.where(d > 0, "b", "a"))
    xs, y = wide(classes=3, seed=4)
    m = L1Logistic(C=0.5).fit(xs, y)
    p = m.predict_proba(xs)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    raw = 1 / (1 + np.exp(-m.decision_function(xs)))
    np.testing.assert_allclose(p, raw / raw.sum(axis=1, keepdims=True), rtol=1e-9)
    assert np.array_equal(m.predict(xs), m.classes_[np.argmax(p, axis=1)])
    assert (m.predict(xs) == y).mean() > 0.7
    with pytest.raises(ValueError, match="two classes"):
        L1Logistic().fit(xs, np.full(len(xs), "a"))


@pytest.mark.parametrize("classes", [2, 3])
def test_the_path_search_is_the_grid_search(classes):
    """L1LogisticCV is GridSearchCV over C of the same pipeline (imputation and scaling fitted
    on each inner training part, the same splits and scorer): the same scores, the same
    choice and the same refitted model, with missing values in the input."""
    xs, y = wide(n=120, p=300, classes=classes, seed=7)
    x = xs * 3.0 + 10.0
    x[np.random.default_rng(1).random(x.shape) < 0.05] = np.nan
    cs = [0.01, 0.1, 1.0, 10.0]
    pipe = Pipeline([("impute", MedianImputer()), ("scale", StandardScaler()),
                     ("est", L1Logistic(path=tuple(cs)))])
    inner = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(pipe, {"est__C": cs}, cv=inner, scoring="roc_auc_ovr").fit(x, y)
    path = L1LogisticCV(pipe, cs, inner, "roc_auc_ovr").fit(x, y)
    np.testing.assert_array_equal(path.cv_scores_, np.vstack(
        [grid.cv_results_[f"split{k}_test_score"] for k in range(3)]))
    assert path.best_params_ == {"C": grid.best_params_["est__C"]}
    assert path.best_score_ == grid.best_score_
    np.testing.assert_array_equal(path.predict_proba(x), grid.predict_proba(x))
    assert np.array_equal(path.classes_, grid.classes_)
