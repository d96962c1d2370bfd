"""The fast MOFA+ engine against stock mofapy2 on the same input (small data, seconds)."""

from __future__ import annotations

import contextlib
import io
import itertools

import numpy as np
import pandas as pd
import pytest
from omix import engine, mofa
from omix.bench import generate, matched_r


def fit(data: list[np.ndarray], likelihoods: list[str] | None = None,
        sizes: list[int] | None = None, **kw):
    """Train on ``data``; ``sizes`` splits the samples, in order, into MOFA+ groups."""
    opts = mofa.MofaOptions(**{"factors": 6, "seed": 3, "min_r2": 0.0, **kw})
    views = [f"v{i}" for i in range(len(data))]
    feats = [[f"v{i}_{j}" for j in range(x.shape[1])] for i, x in enumerate(data)]
    n = data[0].shape[0]
    edges = np.cumsum([0, *(sizes or [n])])
    assert edges[-1] == n
    parts = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    names = [f"g{i}" for i in range(len(parts))] if sizes else None
    with contextlib.redirect_stdout(io.StringIO()):
        return mofa.train_mofa([[x[p].copy() for p in parts] for x in data],
                               likelihoods or ["gaussian"] * len(data), views,
                               [[f"s{i}" for i in range(n)[p]] for p in parts], feats, opts,
                               groups=names)


def summary(ent) -> dict:
    m = ent.model
    elbo = np.asarray(m.train_stats["elbo"], dtype=float)
    return {"z": m.nodes["Z"].getExpectation(), "w": m.nodes["W"].getExpectation(),
            "tau": [t["E"] for t in m.nodes["Tau"].getExpectations()],
            "elbo": elbo[~np.isnan(elbo)], "r2": np.stack(m.calculate_variance_explained()),
            "r2_total": np.stack(m.calculate_variance_explained(total=True))}


@pytest.fixture(scope="module")
def views() -> list[np.ndarray]:
    return generate(80, (60, 40, 25), k=4, seed=5)


def assert_same_model(a: dict, b: dict, tol: float = 1e-9) -> None:
    assert len(a["elbo"]) == len(b["elbo"])            # same convergence iteration
    np.testing.assert_allclose(a["elbo"], b["elbo"], rtol=1e-12)
    np.testing.assert_allclose(a["z"], b["z"], atol=tol)
    for wa, wb in zip(a["w"], b["w"], strict=True):
        np.testing.assert_allclose(wa, wb, atol=tol)
    for ta, tb in zip(a["tau"], b["tau"], strict=True):
        np.testing.assert_allclose(ta, tb, rtol=1e-9)
    np.testing.assert_allclose(a["r2"], b["r2"], atol=1e-12)
    np.testing.assert_allclose(a["r2_total"], b["r2_total"], atol=1e-12)


def test_fast_engine_gives_stock_mofapy2_iterates(views):
    stock, fast = fit(views, engine="mofapy2"), fit(views, engine="fast")
    assert (stock.omix_engine, fast.omix_engine) == ("mofapy2", "fast")
    s, f = summary(stock), summary(fast)
    assert len(s["elbo"]) > 20                           # it really trained
    assert_same_model(s, f)
    assert s["r2_total"].max() > 0.3                     # and found the planted structure


def test_fast_engine_with_samples_missing_a_view(views):
    data = [x.copy() for x in views]
    data[1][:15] = np.nan                                # 15 samples lack view 1
    data[2][60:] = np.nan                                # 20 samples lack view 2
    stock, fast = fit(data, engine="mofapy2"), fit(data, engine="fast")
    assert fast.omix_engine == "fast"
    assert_same_model(summary(stock), summary(fast))


def test_fast_engine_with_scattered_missing_values(views):
    """Missing cells inside measured samples (proteomics, metabolomics): per-sample and
    per-feature Gram matrices weighted by the mask give stock mofapy2's iterates."""
    rng = np.random.default_rng(1)
    data = [x.copy() for x in views]
    data[0][rng.random(data[0].shape) < 0.1] = np.nan       # 10 % scattered
    data[2][rng.random(data[2].shape) < 0.3] = np.nan       # 30 % scattered
    data[1][:15] = np.nan                                   # and whole samples
    stock, fast = fit(data, engine="mofapy2"), fit(data, engine="fast")
    assert (stock.omix_engine, fast.omix_engine) == ("mofapy2", "fast")
    s, f = summary(stock), summary(fast)
    assert len(s["elbo"]) > 20
    assert_same_model(s, f)


@pytest.mark.parametrize("missing", [True, False])
def test_fast_engine_with_a_binary_view(views, missing):
    """A Bernoulli view (mutations; mofapy2's Jaakkola pseudo-data, a noise precision per
    entry) next to Gaussian ones, with or without missing cells in the binary view."""
    rng = np.random.default_rng(2)
    data = [x.copy() for x in views]
    data[1] = (data[1] > 0.3).astype(float)
    if missing:
        data[1][rng.random(data[1].shape) < 0.05] = np.nan
        data[1][:10] = np.nan
    lik = ["gaussian", "bernoulli", "gaussian"]
    stock, fast = fit(data, lik, engine="mofapy2"), fit(data, lik, engine="fast")
    assert (stock.omix_engine, fast.omix_engine) == ("mofapy2", "fast")
    s, f = summary(stock), summary(fast)
    assert len(s["elbo"]) > 20
    assert_same_model(s, f)
    assert s["r2"][0][1].max() > 0.01                        # the binary view is explained


def test_zeta_update_recomputes_the_second_moment_when_w_changed_after_the_elbo(views):
    """The ELBO's E[(ZW)^2] serves the next zeta update only for the same Z and W."""
    data = [x.copy() for x in views]
    data[1] = (data[1] > 0.3).astype(float)
    ent = fit(data, ["gaussian", "bernoulli", "gaussian"], engine="fast")
    y, wnode = ent.model.nodes["Y"].nodes[1], ent.model.nodes["W"].nodes[1]
    y.calculateELBO()                                        # keeps E[(ZW)^2]
    w = wnode.getExpectations()
    w["E"] *= 1.5                                            # W moves (a site's update)
    w["E2"] *= 2.25
    y.updateParameters()
    z = ent.model.nodes["Z"].getExpectations()
    w = wnode.getExpectations()
    expected = np.sqrt(np.square(z["E"] @ w["E"].T) - np.square(z["E"]) @ np.square(w["E"]).T
                       + z["E2"] @ w["E2"].T)               # mofapy2's formula
    np.testing.assert_allclose(y.params["zeta"], expected, rtol=1e-12)


@pytest.mark.parametrize("missing", [True, False])
def test_binary_view_elbo_is_mofapy2s(views, missing):
    """The Jaakkola bound as dot products over the view gives mofapy2's value, with or without
    missing cells, whether or not the Tau node has been updated for the current zeta, and
    after zeta updates that reuse the array of an earlier zeta."""
    from mofapy2.core.nodes.nongaussian_nodes import Bernoulli_PseudoY_Jaakkola

    data = [x.copy() for x in views]
    data[1] = (data[1] > 0.3).astype(float)
    if missing:
        data[1][np.random.default_rng(4).random(data[1].shape) < 0.1] = np.nan
        data[1][:10] = np.nan
    ent = fit(data, ["gaussian", "bernoulli", "gaussian"], engine="fast")
    y, tau = ent.model.nodes["Y"].nodes[1], ent.model.nodes["Tau"].nodes[1]
    values = [(y.calculateELBO(), Bernoulli_PseudoY_Jaakkola.calculateELBO(y))]
    y.updateParameters()                                    # a new zeta, Tau not yet updated
    y.updateParameters()                                    # twice: back in the first array
    y.updateExpectations()
    values.append((y.calculateELBO(), Bernoulli_PseudoY_Jaakkola.calculateELBO(y)))
    tau.updateExpectations()
    values.append((y.calculateELBO(), Bernoulli_PseudoY_Jaakkola.calculateELBO(y)))
    fast, stock = np.array(values).T
    np.testing.assert_allclose(fast, stock, rtol=1e-12)
    assert (stock < 0).all() and stock[1] != stock[0]


def test_binary_view_weight_sums_survive_an_elbo_evaluation(views):
    """The precision-weighted pseudo-data shares its work space with the ELBO: a W update
    after an ELBO evaluation (as a federated round does) sees the same sums as before it."""
    data = [x.copy() for x in views]
    data[1] = (data[1] > 0.3).astype(float)
    data[1][:10] = np.nan
    ent = fit(data, ["gaussian", "bernoulli", "gaussian"], engine="fast")
    eng = engine.FastEngine(ent.model)
    eng.install()
    z = ent.model.nodes["Z"].getExpectations()
    before = eng.w_piece(1, 0, z["E"], z["E2"])
    ent.model.nodes["Y"].nodes[1].calculateELBO()
    after = eng.w_piece(1, 0, z["E"], z["E2"])
    np.testing.assert_array_equal(before.t1, after.t1)
    np.testing.assert_array_equal(before.foo, after.foo)


def test_fast_engine_with_groups(views):
    """MOFA+ groups (three sites of 30/25/25 samples with their own offsets and noise):
    noise precision per group and feature, factor ARD per group; with whole samples missing
    a view, scattered missing values and a binary view with missing cells."""
    rng = np.random.default_rng(4)
    data = [x.copy() for x in views]
    data[0][30:55] += 2.0                                     # site 2 shifted
    data[0][55:] *= 1.5                                       # site 3 noisier
    data[1] = (data[1] > 0.3).astype(float)
    data[1][rng.random(data[1].shape) < 0.05] = np.nan
    data[2][rng.random(data[2].shape) < 0.1] = np.nan
    data[2][:8] = np.nan
    data[0][60:66] = np.nan
    lik = ["gaussian", "bernoulli", "gaussian"]
    sizes = [30, 25, 25]
    stock, fast = fit(data, lik, sizes, engine="mofapy2"), fit(data, lik, sizes, engine="fast")
    assert (stock.omix_engine, fast.omix_engine) == ("mofapy2", "fast")
    assert stock.model.dim["G"] == 3 and "AlphaZ" in stock.model.nodes
    s, f = summary(stock), summary(fast)
    assert len(s["elbo"]) > 20 and s["r2"].shape == (3, 3, 6)
    assert_same_model(s, f)
    tau = s["tau"][0]                         # Gaussian view 0: one precision per group
    assert tau.shape == (80, 60) and not np.allclose(tau[0], tau[60])
    # and the Gaussian-only fast path (every view "rows", two groups), the second group
    # without view 1 at all (a site that measured no proteomics)
    g2 = [x.copy() for x in views]
    g2[1][:10] = np.nan
    g2[1][45:] = np.nan
    s, f = (summary(fit(g2, None, [45, 35], engine=e)) for e in ("mofapy2", "fast"))
    assert_same_model(s, f)


def test_unsupported_names_each_reason(views):
    ent = fit(views, engine="mofapy2", iterations=2)
    assert engine.unsupported(ent) is None
    ent.train_opts["stochastic"] = True
    assert engine.unsupported(ent) == "stochastic inference"
    ent.train_opts["stochastic"] = False
    counts = [np.floor(np.exp(x)) for x in views]
    ent = fit(counts, ["gaussian", "poisson", "gaussian"], engine="fast", iterations=2)
    assert ent.omix_engine == "mofapy2" and engine.unsupported(ent) == (
        "view 1: Poisson_PseudoY likelihood (Poisson or zero-inflated)")
    ent = fit(views, engine="mofapy2", iterations=2, spikeslab_weights=False)
    assert engine.unsupported(ent) == "view 0: weights without the spike-and-slab prior"


def test_float32_option_agrees_closely(views):
    s, f32 = summary(fit(views, engine="mofapy2")), fit(views, engine="fast", float32=True)
    assert f32.omix_engine == "fast32"
    f = summary(f32)
    assert matched_r(s["z"], f["z"]) > 0.999
    it = min(len(s["elbo"]), len(f["elbo"])) - 1
    assert abs(s["elbo"][it] - f["elbo"][it]) / abs(s["elbo"][it]) < 1e-5


def test_unknown_engine_is_refused(views):
    with pytest.raises(mofa.AnalysisError, match="integrate.engine 'gpu' is unknown"):
        fit(views, engine="gpu")


def result(z: np.ndarray, elbo: float, seed: int) -> mofa.MofaResult:
    names = [f"Factor{i + 1}" for i in range(z.shape[1])]
    return mofa.MofaResult(factors=pd.DataFrame(z, index=[f"s{i}" for i in range(len(z))],
                                              columns=names),
                         weights={}, r2=pd.DataFrame(), r2_total=pd.Series(dtype=float),
                         info={"elbo": elbo, "iterations": 10, "seed": seed, "engine": "fast"})


def test_choose_restart_keeps_best_elbo_and_matches_factors_up_to_order_and_sign():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((50, 3))
    other = np.column_stack([-z[:, 2], z[:, 0], rng.standard_normal(50)])  # permuted, flipped
    best, table, stab = mofa.choose_restart([result(other, -120.0, 1), result(z, -100.0, 2),
                                           result(z[:, :2], -100.0, 3)])
    assert best == 1                                      # ties go to the first
    assert list(table["best"]) == [False, True, False]
    r = mofa.matched_correlation(pd.DataFrame(z), pd.DataFrame(other))
    assert r[0] == pytest.approx(1.0) and r[2] == pytest.approx(1.0) and r[1] < 0.5
    assert list(stab["restarts_compared"]) == [2, 2, 2]
    # Factor3 is found by restart 0 (as -Factor1) but not by restart 2, which has 2 factors
    assert stab.loc[2, "min_matched_r"] == 0.0 and stab.loc[2, "mean_matched_r"] == (
        pytest.approx(0.5))
    assert table.loc[2, "min_matched_r_to_best"] == 0.0


def test_single_restart_has_no_stability():
    best, _table, stab = mofa.choose_restart([result(np.eye(4, 2), -1.0, 1)])
    assert best == 0 and stab["mean_matched_r"].isna().all()
    assert list(stab["restarts_compared"]) == [0, 0]


def lean_views(n: int, ds: tuple[int, ...], seed: int) -> tuple[list[np.ndarray], list[str]]:
    """Gaussian views with scattered missing cells and samples lacking a view, and a binary
    view with missing cells: every case the lean data preparation and PCA handle."""
    rng = np.random.default_rng(seed)
    data = generate(n, ds, k=4, seed=seed)
    data[0][rng.random(data[0].shape) < 0.05] = np.nan
    data[1] = (data[1] > 0).astype(float)
    data[1][rng.random(data[1].shape) < 0.03] = np.nan
    data[2][: n // 10] = np.nan
    data[2][:, 3] = np.nan                 # a feature no sample has (sklearn's imputer drops it)
    return data, ["gaussian", "bernoulli", "gaussian"]


@pytest.mark.parametrize("cache", [0, 2**30])
@pytest.mark.parametrize("n,ds", [(150, (400, 150, 120)), (700, (100, 60, 40))])
def test_lean_pca_replays_sklearns_randomized_pca(n, ds, cache):
    """omix.lean.pca_factors gives what mofapy2's initialisation computes (sklearn's
    randomized PCA of the mean-imputed views side by side, scaled to [-1, 1]) without forming
    that matrix: wide (transposed) and tall data, missing cells, a feature never measured;
    the masked views imputed in every product (cache 0) or once (kept between products)."""
    from omix.lean import pca_factors
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer

    data, _ = lean_views(n, ds, seed=11)
    y = SimpleImputer(strategy="mean").fit_transform(np.concatenate(data, axis=1))
    np.random.seed(4)
    want = PCA(n_components=6, whiten=True).fit(y).transform(y)
    want = 2.0 * (want - want.min(axis=0)) / np.ptp(want, axis=0) - 1
    np.random.seed(4)
    got = pca_factors(data, 6, cache_bytes=cache)
    assert PCA(n_components=6).fit(y)._fit_svd_solver == "randomized"
    np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("sizes", [None, [90, 60]])
def test_lean_preparation_and_start_give_stock_mofapy2_iterates(sizes):
    """Big enough for sklearn's randomized PCA (mofapy2's start): the fast path (lean data
    preparation, lean PCA, engine) against stock mofapy2 end to end, one and two groups."""
    data, liks = lean_views(150, (400, 150, 120), seed=12)
    stock = fit(data, liks, sizes=sizes, engine="mofapy2")
    fast = fit(data, liks, sizes=sizes, engine="fast")
    assert fast.omix_engine == "fast"
    s, f = summary(stock), summary(fast)
    assert len(s["elbo"]) > 10
    assert len(s["elbo"]) == len(f["elbo"])
    np.testing.assert_allclose(f["elbo"], s["elbo"], rtol=1e-10)
    np.testing.assert_allclose(f["z"], s["z"], atol=1e-7)
    np.testing.assert_allclose(f["r2"], s["r2"], atol=1e-9)


def test_lean_preparation_centres_the_callers_arrays_in_place_when_handed_over():
    """owned=True: the entry point trains on the caller's array itself (no copy), centred and
    scaled as mofapy2 would; owned=False leaves the caller's arrays untouched."""
    from mofapy2.run.entry_point import entry_point
    from omix.lean import set_data_inplace

    x = generate(50, (30,), k=2, seed=1)[0] + 5.0
    x[3, 4] = np.nan
    keep = x.copy()
    for owned in (False, True):
        arr = x.copy() if owned else x
        ent = entry_point()
        ent.set_data_options(scale_views=True, center_groups=True)
        with contextlib.redirect_stdout(io.StringIO()):
            set_data_inplace(ent, [[arr]], ["gaussian"], ["v"], ["g"],
                             [[f"s{i}" for i in range(50)]], [[f"f{j}" for j in range(30)]],
                             owned=owned)
        assert (ent.data[0] is arr) == owned
        np.testing.assert_array_equal(x, keep)
        want = (keep - np.nanmean(keep, axis=0))
        want /= np.nanstd(want)
        np.testing.assert_allclose(ent.data[0], want, rtol=1e-13, atol=1e-15)
        np.testing.assert_array_equal(ent.intercepts[0][0], np.nanmean(keep, axis=0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thin_mul_is_the_matrix_product_for_every_layout(dtype):
    # the engine, the lean start and the power start all multiply the data through thin_mul:
    # it must be a @ b whatever the layout of a (C, Fortran, a transposed view, a row slice)
    rng = np.random.default_rng(3)
    big = rng.normal(size=(300, 170)).astype(dtype)
    layouts = {"C": big, "F": np.asfortranarray(big), "transposed": big.T,
               "row slice": big[40:250], "column slice": big[:, 5:150]}
    for name, a in layouts.items():
        b = rng.normal(size=(a.shape[1], 7)).astype(dtype)
        got = engine.thin_mul(a, b)
        assert got.shape == (a.shape[0], 7) and got.dtype == dtype, name
        np.testing.assert_allclose(got, np.asarray(a, dtype=np.float64) @ b.astype(np.float64),
                                   rtol=1e-4 if dtype == np.float32 else 1e-12,
                                   atol=1e-3 if dtype == np.float32 else 1e-11, err_msg=name)


@pytest.mark.parametrize("engine_name", ["fast", "mofapy2"])
def test_training_reports_its_iterations_and_converges_as_before(views, engine_name,
                                                                  monkeypatch, caplog):
    """With a progress label, training prints its iteration, the ELBO change mofapy2 tests
    for convergence and the threshold; the model is the one trained without it."""
    quiet = summary(fit(views, engine=engine_name))
    n = len(quiet["elbo"])
    train = mofa.train_mofa

    monkeypatch.setattr(mofa.report_iterations, "__defaults__", (0.0,))  # every iteration
    monkeypatch.setattr(mofa, "train_mofa",
                        lambda *a, **kw: train(*a, **kw, progress="MOFA+ restart 2"))
    with caplog.at_level("INFO", logger="omix.mofa"):
        loud = summary(fit(views, engine=engine_name))
    assert_same_model(quiet, loud, tol=0.0)
    lines = [r.getMessage() for r in caplog.records if "MOFA+ restart 2" in r.getMessage()]
    # iterations 1 .. n: mofapy2 keeps the ELBO up to the one before it converged
    assert len(lines) == n and lines[-1].startswith(f"MOFA+ restart 2: iteration {n}, ")
    e = quiet["elbo"]
    last = 100 * abs((e[-1] - e[-2]) / e[0])
    assert lines[-2].startswith(f"MOFA+ restart 2: iteration {n - 1}, ELBO change "
                                f"{last:.2g} % (stops below 0.0005 %), ")
    assert last < 0.0005 < 100 * abs((e[1] - e[0]) / e[0])
