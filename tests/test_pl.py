"""Plots a clinician reads: what they show, checked in the SVG (matplotlib keeps each text
as a comment next to its glyphs)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from omix import pl
from omix.stats import SurvivalSpec


def test_kaplan_meier_has_time_unit_and_number_at_risk(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(40)]
    surv = pd.DataFrame({"time": rng.exponential(500, 40).round(), "event": rng.integers(0, 2, 40)},
                        index=ids)
    groups = pd.Series(np.where(np.arange(40) < 25, "K1", "K2"), index=ids)
    spec = SurvivalSpec(time="os", event="dead", time_unit="days")
    pl.survival_by_cluster(surv, groups, 0.03, tmp_path / "km", time_label=spec.axis_label)
    svg = (tmp_path / "km.svg").read_text()
    assert "<!-- time (days) -->" in svg
    assert "<!-- At risk -->" in svg
    # the at-risk table: each group's row starts with everyone at risk at time 0
    assert re.search(r"<!-- +K1 +25 -->", svg) and re.search(r"<!-- +K2 +15 -->", svg)
    assert "log-rank p = 0.03" in svg
    assert SurvivalSpec(time="t", event="e").axis_label == "time (unit not set: " \
                                                          "survival.time_unit)"


def test_qc_plot_says_what_was_filtered_and_why(tmp_path):
    import anndata as ad
    from omix.pp import OmicOptions, normalize_omic

    rng = np.random.default_rng(1)
    x = rng.lognormal(8, 1, (30, 60))
    x[:, :5] = 0.0                       # never detected: dropped for missingness
    x[:4, 5] = 0.0                       # below detection in 4 samples
    raw = ad.AnnData(X=x)
    raw.obs_names = [f"s{i}" for i in range(30)]
    raw.var_names = [f"f{j}" for j in range(60)]
    raw.obs["n_measured"] = 60
    raw.uns["omix"] = {"omic": "metab", "kind": "intensity"}
    norm = normalize_omic(raw, OmicOptions(kind="intensity", n_top_features=40))
    pl.qc_omic(raw, norm, tmp_path / "qc")
    svg = (tmp_path / "qc.svg").read_text()
    for text in ("features in the table", "dropped: too often missing or",
                 "below detection (max_missing)", "dropped: not among the most",
                 "variable (n_top_features)",
                 "kept for MOFA+", "normalised value", "log2 raw value (non-zero)",
                 "features (log scale)", "metab (intensity): 30 samples, 40 of 60 features kept"):
        assert re.search(rf"<!-- (.*\n)?{re.escape(text)}(\n.*)? -->", svg), text
    steps = norm.uns["omix"]["filter_steps"]
    assert steps["dropped_missing"] == 5 and steps["dropped_top_n"] == 15
    assert "<!--  5 -->" in svg and "<!--  15 -->" in svg and "<!--  40 -->" in svg


def test_calibration_for_three_classes_draws_one_curve_per_class(tmp_path):
    """Three or more classes: a reliability curve per class against the rest, placed where
    the class's probabilities lie (a calibrated model's points near the diagonal)."""
    rng = np.random.default_rng(3)
    n, classes = 300, ["A", "B", "C"]
    logits = rng.normal(size=(n, 3)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    observed = [classes[rng.choice(3, p=row)] for row in p]  # calibrated by construction
    preds = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "repeat": 1, "fold": 1,
                          "model": "inner_cv_choice", "observed": observed,
                          "predicted": [classes[i] for i in p.argmax(axis=1)],
                          **{f"p_{c}": p[:, j] for j, c in enumerate(classes)}})
    summary = pd.DataFrame({"model": ["inner_cv_choice"], "metric": ["auc"], "mean": [0.8],
                            "ci_low": [0.7], "ci_high": [0.9], "selected": [False]})
    pl.prediction_plots(preds, summary, "subtype", tmp_path / "roc", tmp_path / "cal")
    svg = (tmp_path / "cal.svg").read_text()
    assert "calibration is drawn for two classes" not in svg
    for c in classes:
        n_c = observed.count(c)
        assert f"<!-- {c} (n={n_c}) -->" in svg
    assert "<!-- observed fraction of the class -->" in svg


def test_variance_explained_per_group_marks_a_site_without_an_omic(tmp_path):
    """One heatmap per group (pooled rows left out), bars per view and group; a group that
    did not measure an omic says so instead of showing 0."""
    rows = []
    for g, r2 in (("A", [[30.0, 2.0], [10.0, 1.0]]), ("B", [[5.0, 25.0], [np.nan, np.nan]]),
                  ("all", [[20.0, 10.0], [10.0, 1.0]])):
        for i, v in enumerate(("rna", "protein")):
            rows += [{"group": g, "view": v, "factor": f"Factor{k + 1}", "r2_percent": r2[i][k]}
                     for k in range(2)]
            rows.append({"group": g, "view": v, "factor": "total",
                         "r2_percent": np.nansum(r2[i]) if not np.isnan(r2[i][0]) else np.nan})
    pl.variance_explained_groups(pd.DataFrame(rows), tmp_path / "veg")
    svg = (tmp_path / "veg.svg").read_text()
    assert "group A: % variance explained" in svg and "group B: % variance" in svg
    assert "group all" not in svg
    assert svg.count("not measured") == 1 and "30.0" in svg and "25.0" in svg
    assert (tmp_path / "veg.png").stat().st_size > 5000


def test_per_sample_boxes_are_drawn_as_matplotlib_boxplot_draws_them(tmp_path):
    """The QC plot's boxes come from statistics computed row by row (one copy of a wide
    table, not three): the figure must be the one ``Axes.boxplot`` of the rows draws."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(2)
    x = rng.lognormal(2, 1, (9, 300))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[3] = np.nan                               # a sample with nothing measured
    x[5, :100] = 0.0                            # not positive: left out of the log2 values
    logged = np.log2(np.where(x > 0, x, np.nan))
    rows = [r[~np.isnan(r)] for r in logged]
    stats, med, finite = pl._sample_boxes(x, log2=True)
    np.testing.assert_array_equal(med, [np.median(r) if len(r) else np.nan for r in rows])
    np.testing.assert_array_equal(np.sort(finite), np.sort(np.concatenate(rows)))
    svgs = []
    for draw in ("boxplot", "bxp"):
        fig, ax = plt.subplots()
        box = {"showfliers": False, "widths": 0.8, "medianprops": {"color": "#d95f02"},
               "boxprops": {"linewidth": 0.5}}
        if draw == "boxplot":
            ax.boxplot([r if len(r) else [np.nan] for r in rows], **box)
        else:
            ax.bxp(stats, flierprops={}, meanprops={}, **box,
                   **{k: plt.rcParams[f"boxplot.{r}"] for k, r in pl.BOX_RC.items()})
        pl.save(fig, tmp_path / draw)
        svgs.append((tmp_path / f"{draw}.svg").read_text())
    assert svgs[0] == svgs[1]
    assert (tmp_path / "boxplot.png").read_bytes() == (tmp_path / "bxp.png").read_bytes()


def _qc_inputs(x, kind, opts):
    import anndata as ad
    from omix.pp import normalize_omic

    raw = ad.AnnData(X=x)
    raw.obs_names = [f"s{i}" for i in range(len(x))]
    raw.var_names = [f"f{j}" for j in range(x.shape[1])]
    raw.obs["n_measured"] = (~np.isnan(x)).sum(axis=1)
    raw.uns["omix"] = {"omic": "v", "kind": kind}
    return raw, normalize_omic(raw, opts)


def test_qc_plot_of_many_samples_draws_bands_of_their_box_statistics(tmp_path):
    """Past MAX_BOXES samples, boxes merge into a black block: the same statistics are drawn
    as bands (interquartile range, whiskers) and a median line, sorted by the median."""
    import matplotlib.pyplot as plt
    from omix.pp import OmicOptions

    rng = np.random.default_rng(4)
    n = pl.MAX_BOXES + 50
    x = rng.normal(rng.normal(0, 1, (n, 1)), 1, (n, 80))
    x[rng.random(x.shape) < 0.1] = np.nan
    raw, norm = _qc_inputs(x, "continuous", OmicOptions(kind="continuous"))
    pl.qc_omic(raw, norm, tmp_path / "qc")
    svg = (tmp_path / "qc.svg").read_text()
    assert "dark: 25-75 %, light: whiskers (1.5 x IQR), line: median" in svg
    assert svg.count("<path") < 300                    # not five artists per sample
    fig, ax = plt.subplots()
    stats, med, _ = pl._sample_boxes(x, log2=False)
    order = np.argsort(med, kind="mergesort")
    pl._box_bands(ax, [stats[i] for i in order])
    rows = [r[~np.isnan(r)] for r in x]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.sort([np.median(r) for r in rows]),
                               rtol=1e-12)
    iqr = ax.collections[1].get_paths()[0].vertices[:, 1]
    q = np.array([np.percentile(rows[i], [25, 75]) for i in order])
    assert np.isclose(iqr.min(), q[:, 0].min()) and np.isclose(iqr.max(), q[:, 1].max())
    plt.close(fig)


def test_qc_plot_of_a_binary_view_shows_each_samples_share_of_ones(tmp_path):
    """Boxes of 0/1 values say nothing; the share of 1s (a mutation burden) does."""
    import matplotlib.pyplot as plt
    from omix.pp import OmicOptions

    x = np.zeros((40, 20))
    for i in range(40):
        x[i, : i % 9 + 2] = 1.0                        # 2..10 of 20 features mutated
    x[0, 15] = np.nan                                  # 2 of 19 measured
    raw, norm = _qc_inputs(x, "binary", OmicOptions(kind="binary", min_prevalence=0.0))
    pl.qc_omic(raw, norm, tmp_path / "qc")
    assert "share of features that are 1" in (tmp_path / "qc.svg").read_text()
    fig, ax = plt.subplots()
    pl._binary_shares(ax, x)
    expected = np.sort([(i % 9 + 2) / 20 for i in range(1, 40)] + [2 / 19])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected)
    plt.close(fig)
