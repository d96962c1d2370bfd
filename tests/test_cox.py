"""omix.cox: lifelines' ridge Cox fit re-done on arrays gives lifelines' coefficients."""

import warnings

import numpy as np
import pandas as pd
import pytest
from omix import predict as pr
from omix.cox import fit_ridge_cox
from omix.errors import AnalysisError


def _cohort(n: int, d: int, ties: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # covariates off the unit scale, so the normalisation inside the fit matters
    x = rng.standard_normal((n, d)) * rng.uniform(0.5, 3, d) + rng.uniform(-2, 2, d)
    t = rng.exponential(np.exp(-0.7 * x[:, 0] / x[:, 0].std()))
    t = np.round(t * (5 if ties else 1e6)) + 1     # ties: a handful of distinct times
    e = rng.random(n) < 0.6
    return x, t, e


def _lifelines(x: np.ndarray, t: np.ndarray, e: np.ndarray, p: float):
    from lifelines import CoxPHFitter

    df = pd.DataFrame(x, columns=[f"F{i}" for i in range(x.shape[1])]).assign(T=t, E=e)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CoxPHFitter(penalizer=p).fit(df, "T", "E"), df


@pytest.mark.parametrize("n,d,ties", [(60, 10, False), (60, 5, True), (300, 8, True),
                                      (40, 3, True)])
@pytest.mark.parametrize("penalizer", [0.0, 0.01, 1.0, 10.0])
def test_coefficients_and_risks_are_lifelines(n, d, ties, penalizer):
    x, t, e = _cohort(n, d, ties, seed=n + d)
    if ties:
        assert len(np.unique(t[e])) < e.sum() / 2     # many events share a time
    ref, df = _lifelines(x, t, e, penalizer)
    m = fit_ridge_cox(x, t, e, penalizer)
    assert m.converged
    np.testing.assert_allclose(m.coef, ref.params_.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.partial_hazard(x), ref.predict_partial_hazard(df).to_numpy(),
                               rtol=1e-9)
    # the penalty shrinks: with a large one the coefficients are far smaller than without
    if penalizer == 10.0:
        free = fit_ridge_cox(x, t, e, 0.0)
        assert np.abs(m.coef).sum() < 0.2 * np.abs(free.coef).sum()


def test_the_rows_order_does_not_matter():
    x, t, e = _cohort(80, 4, ties=True, seed=3)
    perm = np.random.default_rng(0).permutation(80)
    a, b = fit_ridge_cox(x, t, e, 0.1), fit_ridge_cox(x[perm], t[perm], e[perm], 0.1)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)


def test_bad_covariates_are_refused_by_name():
    x, t, e = _cohort(50, 3, ties=False, seed=5)
    x[:, 1] = 2.0
    with pytest.raises(AnalysisError, match="covariate 2 has no variance in these 50 patients"):
        fit_ridge_cox(x, t, e, 0.1)
    with pytest.raises(AnalysisError, match="Factor2 has no variance in these 50 patients"):
        fit_ridge_cox(x, t, e, 0.1, names=["Factor1", "Factor2", "Factor3"])
    x[:, 1] = np.arange(50.0)
    x[7, 2] = np.nan
    with pytest.raises(AnalysisError, match="Factor3 has a missing or infinite value"):
        fit_ridge_cox(x, t, e, 0.1, names=["Factor1", "Factor2", "Factor3"])


def test_no_events_gives_a_flat_model():
    x, t, _ = _cohort(30, 2, ties=False, seed=6)
    m = fit_ridge_cox(x, t, np.zeros(30, bool), 0.1)
    assert np.all(m.coef == 0) and np.all(m.partial_hazard(x) == 1.0)


def test_tuned_penalty_is_the_one_lifelines_fits_choose(monkeypatch):
    """The inner-CV choice of the penalty and the fold model are what they were with lifelines
    fitting every inner fold (the code before omix.cox)."""
    rng = np.random.default_rng(11)
    z = pd.DataFrame(rng.standard_normal((90, 6)), index=[f"P{i}" for i in range(90)],
                     columns=[f"Factor{k}" for k in range(1, 7)])
    time_ = np.round(rng.exponential(np.exp(-0.5 * z["Factor1"].to_numpy())) * 50) + 1
    surv = pd.DataFrame({"time": time_, "event": (rng.random(90) < 0.55).astype(int)},
                        index=z.index)
    opts = pr.PredictOptions(seed=4)
    model, pen = pr._tuned_cox(z, surv, opts)

    class Lifelines:   # the old _cox: lifelines' fitter, seen through the RidgeCox interface
        def __init__(self, z, surv, p):
            self.fit_, _ = _lifelines(z.to_numpy(), surv.loc[z.index, "time"].to_numpy(),
                                      surv.loc[z.index, "event"].to_numpy(), p)

        def partial_hazard(self, x):
            return self.fit_.predict_partial_hazard(
                pd.DataFrame(x, columns=self.fit_.params_.index)).to_numpy()

    monkeypatch.setattr(pr, "_cox", Lifelines)
    old, old_pen = pr._tuned_cox(z, surv, opts)
    assert pen == old_pen
    np.testing.assert_allclose(model.coef, old.fit_.params_.to_numpy(), rtol=1e-9)
    # the choice is not trivially the first penalty on every cohort: a strong effect is
    # tuned to a weaker penalty than pure noise
    noise = surv.assign(time=rng.permutation(surv["time"].to_numpy()))
    assert pr._tuned_cox(z, noise, opts)[1] >= pen
