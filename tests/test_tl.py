import anndata as ad
import numpy as np
import pandas as pd
import pytest
from omix import mofa, tl
from omix.errors import AnalysisError


def view(x, samples, feats, lik="gaussian"):
    a = ad.AnnData(X=np.asarray(x, dtype=float))
    a.obs_names, a.var_names = samples, feats
    a.uns["omix"] = {"normalize": {"likelihood": lik}}
    return a


def test_build_mudata_sheet_order_union_and_overlap():
    sheet = pd.DataFrame({"grp": ["a", "b", None, "a"], "age": [1.0, 2, 3, 4]},
                         index=pd.Index(["S1", "S2", "S3", "S4"], name="sample_id"))
    mods = {"x": view(np.ones((2, 2)), ["S4", "S1"], ["g1", "g2"]),  # ingest order
            "y": view(np.ones((2, 1)), ["S2", "S1"], ["p1"])}
    m = tl.build_mudata(mods, sheet)
    assert list(m.obs_names) == ["S4", "S1", "S2"]  # MuData's union order, deterministic
    assert list(m.obs["grp"].astype(object)) == ["a", "a", "b"]
    assert list(m.obs["age"]) == [4.0, 1.0, 2.0]
    tab = tl.overlap_table(mods, pd.Index(m.obs_names))
    assert tab.iloc[0].to_dict() == {"omics": "x+y", "n_omics": 2, "n_samples": 1}
    assert dict(zip(tab["omics"], tab["n_samples"], strict=True))["x (any)"] == 2


def test_one_feature_name_everywhere_and_no_mudata_warning(tmp_path):
    """A gene measured in two omics is two features, '<omic>:<feature>', in the MuData (whose
    global var_names are then unique: no warning on build, write or read) and in the model
    file; omic_features gives back the input tables' names."""
    import warnings

    from omix import io

    ids = ["S1", "S2"]
    sheet = pd.DataFrame({"grp": ["a", "b"]}, index=pd.Index(ids, name="sample_id"))
    mods = {"rna": view(np.ones((2, 2)), ids, ["TP53", "MYC"]),
            "cnv": view(np.ones((2, 2)), ids, ["TP53", "ERBB2"])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = tl.build_mudata(mods, sheet)
        io.write_h5mu(m, tmp_path / "c.h5mu")
        back = io.read_h5mu(tmp_path / "c.h5mu")
    assert list(back.var_names) == ["rna:TP53", "rna:MYC", "cnv:TP53", "cnv:ERBB2"]
    assert mofa.model_feature_names(back, ["rna", "cnv"]) == [["rna:TP53", "rna:MYC"],
                                                               ["cnv:TP53", "cnv:ERBB2"]]
    assert list(io.omic_features(back, "cnv")) == ["TP53", "ERBB2"]
    # a MuData of an older version (bare names) is refused with what to do
    old = io.mudata().MuData({"rna": view(np.ones((2, 1)), ids, ["TP53"])})
    with pytest.raises(Exception, match="older version.*--forcerun mudata"):
        io.omic_features(old, "rna")


def planted(n=80, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    w1 = np.zeros((40, 2))
    w1[:10, 0], w1[10:20, 1] = 2.0, 2.0
    w2 = np.zeros((30, 2))
    w2[:8, 0] = -2.0
    samples = [f"S{i:03d}" for i in range(n)]
    x1 = z @ w1.T + rng.normal(0, 0.5, (n, 40))
    x2 = z @ w2.T + rng.normal(0, 0.5, (n, 30))
    keep2 = np.arange(n) % 5 != 0  # a fifth of the samples lack view b
    mods = {"a": view(x1, samples, [f"a:a{j}" for j in range(40)]),  # <omic>:<feature>
            "b": view(x2[keep2], [s for s, k in zip(samples, keep2, strict=True) if k],
                      [f"b:b{j}" for j in range(30)])}
    from omix.io import mudata

    return mudata().MuData(mods), z, samples


def test_mofa_recovers_planted_factors_with_a_missing_view(tmp_path):
    mdata, z, samples = planted()
    mofa.save_mofa(mdata, mofa.MofaOptions(factors=4, seed=1, min_r2=2.0), tmp_path / "m.hdf5")
    res = mofa.mofa_result(mdata, tmp_path / "m.hdf5")
    f = res.factors.loc[samples].to_numpy()
    corr = np.abs(np.corrcoef(z.T, f.T)[:2, 2:])
    assert corr.max(axis=1).min() > 0.95
    assert res.r2.shape[0] == 2 and res.r2.to_numpy().max() > 20
    assert list(res.weights["b"].index) == [f"b:b{j}" for j in range(30)]
    mofa.attach_mofa(mdata, res)
    assert mdata.obsm["X_mofa"].shape == (80, res.factors.shape[1])
    assert mdata["b"].obsm["X_mofa"].shape[0] == 64
    assert mdata.varm["LFs"].shape == (70, res.factors.shape[1])
    # the one factor table of a MuData gives back the file's factors, in the MuData's order
    table = mofa.factor_table(mdata)
    assert list(table.columns) == list(res.factors.columns) and list(table.index) == samples
    np.testing.assert_array_equal(table.to_numpy(), res.factors.loc[samples].to_numpy())
    # what projection needs is read from the same file: likelihoods, noise, E[w^2] >= E[w]^2
    assert res.likelihoods == {"a": "gaussian", "b": "gaussian"}
    for v in ("a", "b"):
        assert res.tau[v].shape == (res.weights[v].shape[0],) and (res.tau[v] > 0).all()
        assert (res.weights2[v] >= res.weights[v].to_numpy() ** 2 - 1e-12).all()


def test_mofa_groups_give_each_site_its_factor_activity(tmp_path):
    """MOFA+ groups from a sample-sheet column: a factor planted in site B only explains
    variance there and not in site A; the pooled variance explained in the model file is
    1 - (residual sum of squares) / (sum of squares) over both sites' rows (computed here from
    the fitted model's own data, factors and weights); bad group columns are refused."""
    _, z, samples = planted(n=90, seed=3)
    site = np.where(np.arange(90) < 50, "A", "B")
    z[site == "A", 1] = 0.0                          # factor 2 silent in site A
    mdata2, _, _ = planted(n=90, seed=3)
    rng = np.random.default_rng(0)
    for v, d in (("a", 40), ("b", 30)):
        w = np.zeros((d, 2))
        if v == "a":
            w[:10, 0], w[10:20, 1] = 2.0, 2.0
        else:
            w[:8, 0] = -2.0
        rows = mdata2[v].obs_names
        pos = [samples.index(r) for r in rows]
        mdata2[v].X = z[pos] @ w.T + rng.normal(0, 0.5, (len(pos), d))
    mdata2.obs["site"] = site
    opts = mofa.MofaOptions(factors=4, seed=1, min_r2=2.0)
    mofa.save_mofa(mdata2, opts, tmp_path / "g.hdf5", groups="site")
    res = mofa.mofa_result(mdata2, tmp_path / "g.hdf5")
    assert sorted(res.r2_groups) == ["A", "B"]
    assert res.factors.shape[0] == 90 and set(res.factors.index) == set(samples)
    assert (res.sample_groups.loc[samples].to_numpy() == site).all()
    fb = res.factors.loc[np.array(samples)[site == "B"]]
    k = int(np.argmax(np.abs(np.corrcoef(z[site == "B", 1], fb.to_numpy().T)[0, 1:])))
    name = res.factors.columns[k]
    assert res.r2_groups["B"].loc["a", name] > 20
    assert res.r2_groups["A"].loc["a", name] < 1
    ent = mofa.fit_mofa(mdata2, opts, "site")              # same seed, same fit
    zz = ent.model.nodes["Z"].getExpectation()
    for m, (view, y) in enumerate(zip(ent.data_opts["views_names"],
                                      ent.model.nodes["Y"].getExpectation(), strict=True)):
        mask = ent.model.nodes["Y"].nodes[m].getMask(full=True)
        pred = zz @ ent.model.nodes["W"].getExpectation()[m].T
        pred[mask] = 0.0
        hand = 100 * (1 - np.square(y - pred).sum() / np.square(y).sum())
        assert res.r2_total[view] == pytest.approx(hand, rel=1e-9)
    table = mofa.variance_explained_groups_table(res)
    assert list(table.columns) == ["group", "view", "factor", "r2_percent"]
    assert sorted(table["group"].unique()) == ["A", "B", "all"]
    pooled = table[table["group"] == "all"].reset_index(drop=True)
    pd.testing.assert_frame_equal(pooled.drop(columns="group"),
                                  mofa.variance_explained_table(res))
    mdata2.obs.loc[samples[3], "site"] = np.nan
    with pytest.raises(AnalysisError, match="1 sample\\(s\\) have no value in the groups "
                                            "column 'site'"):
        mofa.fit_mofa(mdata2, opts, "site")
    mdata2.obs["site"] = np.where(np.arange(90) < 88, "A", "C")
    with pytest.raises(AnalysisError, match="group 'C' of column 'site' has 2 sample"):
        mofa.fit_mofa(mdata2, opts, "site")


def test_mofa_refuses_more_factors_than_samples(tmp_path):
    mdata, _, _ = planted(n=6)
    with pytest.raises(AnalysisError, match="6 samples for 10 factors"):
        mofa.save_mofa(mdata, mofa.MofaOptions(factors=10), tmp_path / "m.hdf5")


def fake_result():
    f = ["Factor1", "Factor2"]
    z = pd.DataFrame([[2.0, 0.1], [1.5, -0.2], [-2.0, 0.3], [-1.8, 0.0]],
                     index=["A", "B", "C", "D"], columns=f)
    w = {"v": pd.DataFrame([[1.0, 0.0], [-0.5, 0.0], [0.0, 2.0]], index=["g1", "g2", "g3"],
                           columns=f)}
    r2 = pd.DataFrame([[40.0, 10.0]], index=["v"], columns=f)
    return mofa.MofaResult(factors=z, weights=w, r2=r2, r2_total=pd.Series({"v": 50.0}))


def test_rank_features_hand_computed_scores():
    ranked, _ftab = tl.rank_features(fake_result())
    # no outcome: score = |w| / max|w| * r2 / 100 summed over factors
    assert list(ranked["feature"]) == ["g1", "g2", "g3"]
    np.testing.assert_allclose(ranked["score"], [0.4, 0.2, 0.1])
    assert list(ranked["rank"]) == [1, 2, 3] and list(ranked["top_factor"])[2] == "Factor2"
    assert ranked.loc[1, "weight"] == -0.5


def test_rank_features_weighs_factors_by_outcome_association():
    y = pd.Series(["r", "r", "n", "n"], index=["A", "B", "C", "D"])
    ranked, ftab = tl.rank_features(fake_result(), y)
    eff = ftab.set_index("factor")["effect"]
    assert eff["Factor1"] > eff["Factor2"]
    assert list(ranked["feature"])[:2] == ["g1", "g2"]
    assert {"factor_outcome_q", "factor_outcome_effect"} <= set(ranked.columns)


def test_factor_outcome_association_numeric_uses_spearman():
    z = pd.DataFrame({"Factor1": np.arange(10.0), "Factor2": np.r_[5, 1, 8, 2, 9, 0, 7, 3, 6, 4]})
    y = pd.Series(np.arange(10.0) * 3, index=z.index)
    out = tl.factor_outcome_association(z, y).set_index("factor")
    assert out.loc["Factor1", "test"] == "spearman"
    assert out.loc["Factor1", "effect"] == pytest.approx(1.0)
    assert out.loc["Factor1", "q"] < 0.01 < out.loc["Factor2", "q"]


def test_cluster_factors_finds_separated_groups_and_states_the_choice(caplog):
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]])
    truth = np.repeat([0, 1, 2], 25)
    z = pd.DataFrame(centres[truth] + rng.normal(0, 0.5, (75, 3)),
                     index=[f"S{i}" for i in range(75)])
    clusters, table, umap = tl.cluster_factors(z, tl.ClusterOptions(seed=0))
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, clusters["cluster"]) == pytest.approx(1.0)
    assert table["chosen"].sum() == 1
    chosen = table[table["chosen"]].iloc[0]
    assert chosen["n_clusters"] == 3
    assert chosen["silhouette"] == table.loc[table["admissible"], "silhouette"].max()
    assert umap.shape == (75, 2)
    import logging

    from omix.errors import Stopwatch

    watch = Stopwatch(logging.getLogger("omix.test"), "cluster", 4, after=0.0)
    with caplog.at_level("INFO", logger="omix.test"):
        again, _, _ = tl.cluster_factors(z, tl.ClusterOptions(seed=0), watch=watch)
    seen = [r.getMessage() for r in caplog.records if r.name == "omix.test"]
    pd.testing.assert_frame_equal(clusters, again)  # the same with progress lines
    assert [m.split(" (phase")[0] for m in seen] == [
        "cluster: kNN graph of 75 patients done", "cluster: Leiden and silhouettes done",
        "cluster: UMAP embedding done"]
    assert seen[0].endswith("s so far; next: Leiden at 11 resolutions)")
    assert "(phase 3/4, " in seen[2]


def test_cluster_number_asked_for_and_the_outcome_agreement_of_every_partition():
    """Two well-separated super-groups each made of two sub-groups: silhouette favours 2
    clusters; a user who asks for 4 gets the partition that matches the 4 subtypes."""
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [1.4, 0], [12, 0], [13.4, 0]])
    truth = np.repeat([0, 1, 2, 3], 30)
    z = pd.DataFrame(centres[truth] + rng.normal(0, 0.45, (120, 2)),
                     index=[f"S{i}" for i in range(120)])
    y = pd.Series([f"type{t}" for t in truth], index=z.index)
    _clusters, table, _ = tl.cluster_factors(z, tl.ClusterOptions(seed=0), y)
    assert table.loc[table["chosen"], "n_clusters"].iloc[0] == 2
    assert table["ari_outcome"].max() > table.loc[table["chosen"], "ari_outcome"].iloc[0] + 0.2
    asked, table4, _ = tl.cluster_factors(z, tl.ClusterOptions(seed=0, n_clusters=4), y)
    assert asked["cluster"].nunique() == 4
    assert tl.ari_known(y, asked["cluster"].to_numpy()) > 0.8
    assert table4.loc[table4["chosen"], "ari_to_chosen"].iloc[0] == pytest.approx(1.0)
    base, labels = tl.pca_kmeans_baseline(z, n_components=2, ks=[2, 4, 4, 1], seed=0)
    assert list(base["k"]) == [2, 4] and len(set(labels[4])) == 4  # k < 2 and repeats dropped
    # 2-means of the baseline finds the two super-groups
    assert tl.ari_known(y.replace({"type1": "type0", "type3": "type2"}), labels[2]) == 1.0


def test_relabel_by_size_and_partition_comparison():
    assert list(tl.relabel_by_size(np.array(["x", "y", "y", "z", "y", "x"]))) == [
        "K2", "K1", "K1", "K3", "K1", "K2"]
    # a name that would equal an outcome class: all names change, none collides
    clash = tl.relabel_by_size(np.array(["x", "y", "y"]), avoid=["K2", "C1A"])
    assert list(clash) == ["MOFA-K2", "MOFA-K1", "MOFA-K1"]
    assert list(tl.relabel_by_size(np.array(["x", "y", "y"]), avoid=["K3", "C1"])) == [
        "K2", "K1", "K1"]
    c = pd.Series(["C1", "C1", "C2", "C2"], index=list("ABCD"))
    y = pd.Series(["u", "u", "v", None], index=list("ABCD"))
    out = tl.compare_partitions(c, y).set_index("metric")
    assert out.loc["ARI", "value"] == pytest.approx(1.0) and out.loc["ARI", "n_samples"] == 3


def test_consensus_rank_is_the_mean_of_the_available_ranks():
    ranked = pd.DataFrame({"feature": ["a", "b", "c"], "omic": "v", "rank": [1, 2, 3],
                           "var_name": ["v:a", "v:b", "v:c"]})
    stab = pd.DataFrame({"feature": ["v:a", "v:b", "v:c"], "selection_probability": [0.1, 0.9, 0.5],
                         "q_value": [1.0, 0.01, 0.2]})
    rf = pd.DataFrame({"feature": ["v:a", "v:b", "v:c"], "rf_importance": [-0.1, 0.2, 0.3],
                       "rf_importance_sd": 0.0})
    out = tl.consensus_ranking(ranked, stab, rf)
    # ranks: MOFA 1,2,3; stability 3,1,2; forest (a's drop <= 0 shares the last rank) 3,2,1
    assert list(out["consensus_rank"]) == [3, 1, 2]  # means 7/3, 5/3, 2
    assert list(out["q_value"]) == [1.0, 0.01, 0.2]
    only_mofa = tl.consensus_ranking(ranked, None, None)
    assert "consensus_rank" not in only_mofa and list(only_mofa.columns) == list(ranked.columns)


def test_model_file_is_byte_identical_for_the_same_data_and_seed(tmp_path):
    """No wall-clock time or other run state in mofa/model.hdf5 (results reproduce byte for
    byte)."""
    mdata, _, _ = planted(n=40)
    for name in ("a.hdf5", "b.hdf5"):
        mofa.save_mofa(mdata, mofa.MofaOptions(factors=3, seed=2), tmp_path / name)
    assert (tmp_path / "a.hdf5").read_bytes() == (tmp_path / "b.hdf5").read_bytes()


def test_umap_kernels_compiled_once_are_loaded_by_the_next_process(tmp_path):
    """The cluster rule's umap-learn kernels are compiled by the first process and read from
    numba's cache by the next one, which gets the same embedding."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys, json, numpy as np, pandas as pd\n"
        "from omix import tl\n"
        "import umap.umap_ as u\n"
        "z = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 4)))\n"
        "_, _, emb = tl.cluster_factors(z, tl.ClusterOptions(seed=0))\n"
        "s = u.smooth_knn_dist.stats\n"
        "print(json.dumps({'hits': sum(s.cache_hits.values()),\n"
        "                  'misses': sum(s.cache_misses.values()),\n"
        "                  'emb': emb.round(5).tolist()}))\n")
    scripts = Path(tl.__file__).resolve().parents[1]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "PYTHONPATH": str(scripts)}
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, check=True).stdout
        runs.append(__import__("json").loads(out.strip().splitlines()[-1]))
    assert runs[0]["misses"] >= 1 and runs[0]["hits"] == 0      # compiled and stored
    assert runs[1]["hits"] >= 1 and runs[1]["misses"] == 0      # loaded, not compiled
    assert runs[0]["emb"] == runs[1]["emb"]
    assert any((tmp_path / "numba").rglob("*.nbi"))


def test_silhouettes_of_many_labellings_equal_scikit_learns():
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(3)
    z = np.vstack([rng.normal(0, 1, (40, 5)), rng.normal(3, 1, (31, 5))])
    n = len(z)
    labs = [rng.integers(0, k, n).astype(str) for k in (2, 3, 6)]
    labs.append(np.where(np.arange(n) < 40, "a", "b"))           # the planted split
    single = labs[1].copy()
    single[5] = "alone"                                            # a one-sample cluster
    labs += [single, np.zeros(n).astype(str), np.arange(n).astype(str)]
    got = tl.silhouettes(z, labs, block=16)                        # several distance blocks
    want = [silhouette_score(z, lab) for lab in labs[:5]]
    np.testing.assert_allclose(got[:5], want, rtol=1e-12, atol=1e-14)
    assert got[3] > 0.5 > max(got[:3])
    assert np.isnan(got[5]) and np.isnan(got[6])                   # 1 cluster; n clusters
