import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from omix.errors import AnalysisError
from omix.pp import (
    Normalizer,
    OmicOptions,
    m_values,
    normalize_omic,
    pqn_factors,
)


def raw(x, kind="continuous", name="v"):
    a = ad.AnnData(X=np.asarray(x, dtype=float))
    a.obs_names = [f"s{i}" for i in range(a.n_obs)]
    a.var_names = [f"f{j}" for j in range(a.n_vars)]
    a.obs["n_measured"] = (~np.isnan(a.X)).sum(1)
    a.uns["omix"] = {"omic": name, "kind": kind}
    return a


def frame(x, ids=None):
    x = np.asarray(x, dtype=float)
    return pd.DataFrame(x, index=ids or [f"s{i}" for i in range(len(x))],
                        columns=[f"f{j}" for j in range(x.shape[1])])


def test_library_size_matches_hand_computation():
    x = np.array([[1.0, 3.0], [2.0, 2.0], [10.0, 30.0]])
    out = normalize_omic(raw(x, "counts"), OmicOptions(kind="counts", min_variance=0))
    nz = Normalizer.of(out)
    assert nz.library_size_target == 4.0  # median of 4, 4, 40
    np.testing.assert_allclose(out.X, np.log1p(x / x.sum(1, keepdims=True) * 4.0))
    np.testing.assert_allclose(out.obs["library_size"], [4.0, 4.0, 40.0])
    # a new sample lacking a gene is compared with that gene-less share of the target
    t = nz.transform(pd.DataFrame({"f1": [6.0]}, index=["new"]))
    share = nz.library_fraction[1]
    np.testing.assert_allclose(t.x["f1"], np.log1p(6.0 * 4.0 * share / 6.0))
    assert t.x["f0"].isna().all() and t.info["input_features_missing"] == 1


def test_pqn_recovers_dilution():
    rng = np.random.default_rng(0)
    base = rng.lognormal(5, 1, (1, 30)) * rng.lognormal(0, 0.05, (8, 30))
    dil = np.array([1, 2, 0.5, 1, 4, 1, 1, 0.25])
    f, ref = pqn_factors(base * dil[:, None])
    np.testing.assert_allclose(f / np.median(f), dil / np.median(dil), rtol=0.1)
    assert ref.shape == (30,)


def test_pqn_hand_example():
    x = np.array([[1.0, 2.0, 4.0], [2.0, 4.0, 8.0], [1.0, np.nan, 4.0]])
    f, ref = pqn_factors(x)
    np.testing.assert_allclose(ref, [1.0, 3.0, 4.0])
    np.testing.assert_allclose(f, [1.0, 2.0, 1.0])


def test_half_min_imputation_is_below_every_observed_value():
    x = np.array([[2.0, 32.0], [0.0, 64.0], [8.0, 0.0], [4.0, 16.0]])
    opts = OmicOptions(kind="intensity", impute="half_min", min_variance=0, max_missing=0.5)
    out = normalize_omic(raw(x, "intensity"), opts)
    obs = np.where(out.layers["censored"] > 0, np.nan, out.X)
    cens = out.layers["censored"] > 0
    assert cens[1, 0] and cens[2, 1] and cens.sum() == 2
    # the fill is the feature's smallest observed (sample-median-centred) value minus 1 (log2)
    np.testing.assert_allclose(out.X[1, 0], np.nanmin(obs[:, 0]) - 1.0)
    np.testing.assert_allclose(out.X[2, 1], np.nanmin(obs[:, 1]) - 1.0)


def test_min_prob_draws_are_seeded_left_shifted_and_per_patient():
    rng = np.random.default_rng(1)
    x = 2 ** rng.normal(10, 1, (40, 300))
    x[rng.uniform(size=x.shape) < 0.1] = 0.0
    opts = OmicOptions(kind="intensity", impute="min_prob", n_top_features=None)
    a = normalize_omic(raw(x, "intensity"), opts, seed=3)
    b = normalize_omic(raw(x, "intensity"), opts, seed=3)
    np.testing.assert_array_equal(a.X, b.X)
    cens = a.layers["censored"] > 0
    assert a.X[cens].mean() < np.percentile(a.X[~cens], 5)
    nz = Normalizer.of(a)
    assert nz.min_prob_sd > 0 and nz.seed == 3
    # one patient's draws are the same alone or with any other patients
    xdf = frame(x)
    whole = nz.transform(xdf).x
    alone = nz.transform(xdf.iloc[[7]]).x
    shuffled = nz.transform(xdf.iloc[[12, 7, 3]]).x
    np.testing.assert_array_equal(alone.loc["s7"], whole.loc["s7"])
    np.testing.assert_array_equal(shuffled.loc["s7"], whole.loc["s7"])
    c = normalize_omic(raw(x, "intensity"), opts, seed=4)
    assert not np.array_equal(c.X[cens], a.X[cens])


def test_m_values():
    np.testing.assert_allclose(m_values(np.array([0.5, 0.8])), [0.0, 2.0])
    assert np.isfinite(m_values(np.array([0.0, 1.0]))).all()


def test_counts_pipeline_selects_highly_variable_features():
    rng = np.random.default_rng(0)
    mu = rng.lognormal(4, 1, 1000)
    mu[:5] = np.quantile(mu[5:], [0.3, 0.4, 0.5, 0.6, 0.7])  # spread over mean bins
    x = rng.poisson(np.tile(mu, (40, 1))).astype(float)
    x[:20, :5] *= 8  # five features vary far more than Poisson noise
    out = normalize_omic(raw(x, "counts"), OmicOptions(kind="counts", n_top_features=50))
    assert out.n_vars == 50 and {"f0", "f1", "f2", "f3", "f4"} <= set(out.var_names)
    np.testing.assert_array_equal(out.layers["raw"], x[:, [int(v[1:]) for v in out.var_names]])
    assert out.uns["omix"]["normalize"]["likelihood"] == "gaussian"
    assert out.uns["omix"]["filter_steps"]["dropped_top_n"] == 950


def test_intensity_censoring_pqn_and_missingness_filter():
    rng = np.random.default_rng(0)
    x = rng.lognormal(8, 1, (30, 12))
    x[:, 0] = 0.0          # never detected: dropped
    x[:5, 1] = 0.0         # below detection in 5 samples: imputed low
    x[3, 2] = np.nan       # a missing cell
    opts = OmicOptions(kind="intensity", pqn=True, detection_limit=0.0, impute="half_min")
    out = normalize_omic(raw(x, "intensity"), opts)
    assert "f0" not in out.var_names
    col = list(out.var_names).index("f1")
    assert np.all(out.X[:5, col] < out.X[5:, col].min())
    assert out.layers["censored"][:5, col].all()
    assert not np.isnan(out.X).any()
    assert out.uns["omix"]["filter_steps"]["dropped_missing"] == 1
    # the PQN reference is taken over the features that enter (the never-detected one does not)
    nz = Normalizer.of(out)
    assert "pqn_factor" in out.obs and nz.pqn_reference.shape == (11,)
    assert nz.input_features == [f"f{j}" for j in range(1, 12)]


def test_binary_prevalence_and_zero_variance_filters():
    x = np.zeros((20, 4))
    x[:10, 0] = 1           # common
    x[:1, 1] = 1            # 5 %: dropped at min_prevalence 0.1
    x[:, 2] = 1             # all present: dropped (min(p, 1-p) = 0)
    x[5:12, 3] = 1
    out = normalize_omic(raw(x, "binary"), OmicOptions(kind="binary", min_prevalence=0.1))
    assert list(out.var_names) == ["f0", "f3"]
    assert out.uns["omix"]["normalize"]["likelihood"] == "bernoulli"
    np.testing.assert_array_equal(out.X, x[:, [0, 3]])

    c = np.c_[np.arange(10.0), np.ones(10)]
    out = normalize_omic(raw(c), OmicOptions(kind="continuous"))
    assert list(out.var_names) == ["f0"]
    assert out.uns["omix"]["filter_steps"]["dropped_low_variance"] == 1


def test_nothing_left_is_an_error():
    with pytest.raises(AnalysisError, match="no feature passes"):
        normalize_omic(raw(np.zeros((5, 2)), "binary"), OmicOptions(kind="binary"))


def test_combat_removes_a_batch_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (40, 8))
    batch = pd.Series(["a"] * 20 + ["b"] * 20, index=[f"s{i}" for i in range(40)])
    x[20:] += 3.0
    out = normalize_omic(raw(x), OmicOptions(kind="continuous"), batch=batch)
    gap = np.abs(out.X[20:].mean(0) - out.X[:20].mean(0))
    assert gap.max() < 0.8 and gap.mean() < 0.4  # 3.0 before correction
    with pytest.raises(AnalysisError, match="single sample"):
        normalize_omic(raw(x), OmicOptions(kind="continuous"),
                       batch=pd.Series(["a"] * 39 + ["b"], index=batch.index))


def test_a_measured_value_that_turns_non_finite_is_an_error_naming_where():
    from omix.errors import AnalysisError
    from omix.pp import _require_finite

    x0 = np.array([[1.0, 2.0], [3.0, np.nan]])
    censored = np.isnan(x0)
    ok = np.array([[0.5, 0.7], [0.1, np.nan]])     # censored cell left missing: fine
    _require_finite(ok, x0, censored, ["g1", "g2"], "rna", "counts")
    bad = np.array([[0.5, 0.7], [np.inf, np.nan]])
    with pytest.raises(AnalysisError, match=r"rna: the counts transform turned 1 measured "
                                            r"value\(s\) into an infinite value or NaN \(first: "
                                            r"sample row 2, feature 'g1'\)"):
        _require_finite(bad, x0, censored, ["g1", "g2"], "rna", "counts")


def test_results_of_an_older_version_are_refused_with_what_to_do():
    from omix.errors import ConfigError

    out = normalize_omic(raw(np.random.default_rng(0).normal(size=(10, 5)), name="cnv"),
                         OmicOptions(kind="continuous"))
    assert Normalizer.of(out).features == list(out.var_names)
    del out.uns["omix"]["normalize"]["normalizer"]
    with pytest.raises(ConfigError) as err:
        Normalizer.of(out)
    assert err.value.one_line() == (
        "the normalised data of cnv were written by an older version of this workflow (no "
        "normaliser parameters). Re-run normalisation: snakemake --forcerun normalize")


def test_a_patient_alone_gets_its_row_of_a_wide_count_table_bit_for_bit():
    """At thousands of features the row sums of a column-major table and of a single row
    used to differ in the last bit; a patient's values must not depend on the table."""
    rng = np.random.default_rng(3)
    x = rng.poisson(rng.lognormal(3, 1, 4000), (40, 4000)).astype(float)
    out = normalize_omic(raw(x, "counts"), OmicOptions(kind="counts", n_top_features=500))
    nz = Normalizer.of(out)
    whole = pd.DataFrame(x, index=out.obs_names, columns=[f"f{j}" for j in range(4000)])
    full = nz.transform(whole).x
    np.testing.assert_array_equal(full.to_numpy(), np.asarray(out.X))
    for i in (0, 17, 39):
        alone = nz.transform(whole.iloc[[i]]).x
        np.testing.assert_array_equal(alone.to_numpy(), full.iloc[[i]].to_numpy())


@pytest.mark.parametrize("kind", ["beta", "binary", "continuous"])
def test_column_local_kinds_filter_in_blocks_with_the_whole_matrix_numbers(kind, monkeypatch):
    """A methylation array is filtered in column blocks: whatever the block width, the kept
    features, the matrix and every statistic are those of the whole matrix's transform."""
    import omix.pp as pp

    rng = np.random.default_rng(5)
    n, d = 30, 257
    x = {"beta": rng.beta(2, 5, (n, d)), "binary": (rng.random((n, d)) < 0.3) * 1.0,
         "continuous": rng.normal(0, rng.lognormal(0, 1, d), (n, d))}[kind]
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 7] = np.nan                               # dropped: missing everywhere
    x[:, 9] = 0.25                                 # dropped: no variance (or too common)
    opts = OmicOptions(kind=kind, n_top_features=40, min_prevalence=0.05, max_missing=0.5)
    expected = pp.m_values(x) if kind == "beta" else x
    with warnings.catch_warnings():                # column 7: NaN variance and mean, as meant
        warnings.simplefilter("ignore", RuntimeWarning)
        var = np.nanvar(expected, axis=0, ddof=1)
        p = np.nanmean(x, axis=0)
    var[~(np.isnan(x).mean(axis=0) <= 0.5)] = -1.0
    if kind == "binary":
        var[~(np.minimum(p, 1 - p) >= 0.05)] = -1.0
    eligible = set(np.flatnonzero(var > 1e-8))
    results = []
    for cells in (1, 7 * n, 10**9):                # one column, 7 columns, the whole matrix
        monkeypatch.setattr(pp, "BLOCK_CELLS", cells)
        out = normalize_omic(raw(x, kind), opts)
        kept = [int(f[1:]) for f in out.var_names]
        assert len(kept) == 40 and kept == sorted(kept) and set(kept) <= eligible
        # the most variable (binary variances tie: to rounding, as the code sums them)
        assert var[kept].min() >= max(var[j] for j in eligible - set(kept)) - 1e-12
        np.testing.assert_allclose(out.X, expected[:, kept], rtol=1e-15)
        results.append(out)
    for out in results[1:]:
        np.testing.assert_array_equal(out.X, results[0].X)
        pd.testing.assert_frame_equal(out.var, results[0].var, check_exact=True)
        pd.testing.assert_frame_equal(out.obs, results[0].obs, check_exact=True)
        assert out.uns["omix"] == results[0].uns["omix"]


def test_a_column_local_transform_reads_only_the_model_features():
    """Features of the table the model does not use neither cost memory nor change a value;
    the report of what the table lacks still counts every input feature."""
    rng = np.random.default_rng(6)
    x = rng.beta(2, 5, (12, 50))
    out = normalize_omic(raw(x, "beta"), OmicOptions(kind="beta", n_top_features=5))
    nz = Normalizer.of(out)
    full = nz.transform(frame(x))
    only = nz.transform(frame(x)[nz.features])
    np.testing.assert_array_equal(only.x.to_numpy(), full.x.to_numpy())
    np.testing.assert_array_equal(full.x.to_numpy(), np.asarray(out.X))
    assert full.info["input_features_missing"] == 0
    assert only.info == {"input_features": 50, "input_features_missing": 45,
                         "model_features": 5, "model_features_missing": 0}
