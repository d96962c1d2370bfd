"""Plots (scanpy's ``pl`` in spirit): each function writes ``<stem>.png`` and ``<stem>.svg``.

Sample IDs are never drawn (they may identify patients); samples are shown as positions,
grouped by cluster or outcome.  Output is deterministic: fixed SVG hash salt, no dates.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .errors import Ticker
from .io import atomic_path

plt.rcParams.update({"svg.hashsalt": "omix", "figure.dpi": 110, "font.size": 9,
                     "axes.spines.top": False, "axes.spines.right": False})
PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
           "#666666", "#1f78b4", "#b2df8a", "#fb9a99", "#cab2d6"]
MISSING_COLOUR = "#d9d9d9"
log = logging.getLogger("omix.pl")


def save(fig: Any, stem: str | os.PathLike[str]) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg atomically; close the figure."""
    stem = Path(stem)
    out = []
    for ext in ("png", "svg"):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight",
                        metadata={"Date": None} if ext == "svg" else {"Software": None})
        out.append(path)
    plt.close(fig)
    return out


def colours_for(values: pd.Series) -> tuple[list[str], dict[str, str]]:
    """A colour per value (missing = grey) and the legend mapping, levels sorted."""
    levels = sorted({str(v) for v in values.dropna()}, key=str)
    cmap = {lev: PALETTE[i % len(PALETTE)] for i, lev in enumerate(levels)}
    cols = [cmap[str(v)] if pd.notna(v) else MISSING_COLOUR for v in values]
    return cols, cmap


def _legend(ax: Any, cmap: dict[str, str], title: str, missing: bool = False,
            anchor: tuple[float, float] = (1.01, 1.0)) -> Any:
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=k) for k, c in cmap.items()]
    if missing:
        handles.append(Patch(color=MISSING_COLOUR, label="missing"))
    leg = ax.legend(handles=handles, title=title, frameon=False, fontsize=8, title_fontsize=8,
                    loc="upper left", bbox_to_anchor=anchor)
    return leg


# why features were dropped, in the words of the config keys that decide it
FILTER_REASONS = {"dropped_missing": "too often missing or\nbelow detection (max_missing)",
                  "dropped_prevalence": "too rare or too common\n(min_prevalence)",
                  "dropped_low_variance": "no variance\n(min_variance)",
                  "dropped_top_n": "not among the most\nvariable (n_top_features)"}


# what ``Axes.boxplot`` takes from the style when it calls ``bxp`` (matplotlib 3.10)
BOX_RC = {"shownotches": "notch", "patch_artist": "patchartist", "meanline": "meanline",
          "showmeans": "showmeans", "showcaps": "showcaps", "showbox": "showbox"}


def _sample_boxes(mat: np.ndarray, log2: bool) -> tuple[list[dict[str, Any]], np.ndarray,
                                                       np.ndarray]:
    """Each row's box-plot statistics (matplotlib's, over its non-missing values, of their
    log2 where positive if ``log2``), each row's median and all those values in one array.

    ``Axes.boxplot`` of the rows' values would draw the same boxes, but it needs every row's
    copy at once: row by row, a 200,000-probe methylation table needs one copy, not three.
    """
    from matplotlib.cbook import boxplot_stats

    whis, boot = plt.rcParams["boxplot.whiskers"], plt.rcParams["boxplot.bootstrap"]
    stats, med = [], np.full(len(mat), np.nan)
    finite, k = np.empty(mat.size), 0
    tick = Ticker(log, "QC plot: box statistics", len(mat), "samples")
    for i, r in enumerate(mat):
        tick(i)
        if log2:
            r = np.log2(np.where(r > 0, r, np.nan))
        d = r[~np.isnan(r)]
        if len(d):
            med[i] = np.median(d)
            finite[k:k + len(d)] = d
            k += len(d)
        stats.append(boxplot_stats([d if len(d) else [np.nan]], whis=whis,
                                   bootstrap=boot)[0])
    return stats, med, finite[:k] if k else np.array([0.0])


MAX_BOXES = 150  # more samples than this: their boxes merge into a black block; bands instead


def _box_bands(ax: Any, stats: list[dict[str, Any]]) -> None:
    """The boxes of many samples as bands, one sample per position: whiskers light, box
    (interquartile range) dark, median line; the same statistics as the boxes, three artists
    instead of five per sample (889 boxes drew as a black block in a 2.4 MB SVG)."""
    x = np.arange(1, len(stats) + 1)
    col = {k: np.array([s[k] for s in stats], dtype=float)
           for k in ("whislo", "q1", "med", "q3", "whishi")}
    ax.fill_between(x, col["whislo"], col["whishi"], step="mid", color="#cfcfcf", lw=0)
    ax.fill_between(x, col["q1"], col["q3"], step="mid", color="#7f7f7f", lw=0)
    ax.plot(x, col["med"], drawstyle="steps-mid", color="#d95f02", lw=0.8)
    ax.set_xlim(0.5, len(stats) + 0.5)


def _binary_shares(ax: Any, mat: np.ndarray) -> None:
    """Each sample's share of measured features that are 1 (e.g. its mutation burden over
    the table's genes), samples sorted by it."""
    with np.errstate(invalid="ignore"):
        share = np.nansum(mat, axis=1) / np.sum(~np.isnan(mat), axis=1)
    share = np.sort(share[np.isfinite(share)])
    ax.plot(np.arange(1, len(share) + 1), share, drawstyle="steps-mid", color="#1b9e77")
    ax.set_xlim(0.5, max(len(share), 1) + 0.5)
    ax.set_ylim(0, max(float(share.max()) if len(share) else 0.0, 0.01) * 1.05)
    ax.set_xticks([])
    ax.set_xlabel(f"{len(share)} samples with a measured value (sorted)")
    ax.set_ylabel("share of features that are 1")


def qc_omic(raw: Any, norm: Any, stem: str | os.PathLike[str]) -> list[Path]:
    """Per-sample distributions before/after normalisation, what the filters dropped and why,
    and (when any) how missing values are spread over the features."""
    info = norm.uns.get("omix", {})
    kind, name = info.get("kind", "?"), info.get("omic", "omic")
    steps = info.get("filter_steps", {})
    x0 = np.asarray(raw.X, dtype=float)
    with np.errstate(invalid="ignore"):  # an intensity of 0 is below detection
        miss = (np.isnan(x0) | ((x0 <= 0) if kind == "intensity" else False)).mean(axis=0)
    after = np.asarray(norm.X, dtype=float)
    if "censored" in norm.layers:
        miss_after = norm.var["missing_fraction"].to_numpy()
    else:
        miss_after = np.isnan(after).mean(axis=0)
    any_missing = bool(miss.max() > 0 or miss_after.max() > 0)
    ratios = [3, 3, 3] + ([2] if any_missing else [])
    fig, axes = plt.subplots(1, len(ratios), figsize=(3.6 * len(ratios), 3.8),
                             gridspec_kw={"width_ratios": ratios})
    logged = kind in ("counts", "intensity")
    label = "log2 raw value (non-zero)" if logged else "raw value"
    for ax, mat, log2, title, ylab in (
            (axes[0], x0, logged, "before normalisation", label),
            (axes[1], after, False, "after: normalised, filtered", "normalised value")):
        ax.set_title(title)
        if kind == "binary":   # boxes of 0/1 values say nothing: each sample's share of 1s
            _binary_shares(ax, mat)
            continue
        stats, med, finite = _sample_boxes(mat, log2)
        order = np.argsort(np.nan_to_num(med, nan=-np.inf), kind="mergesort")
        if len(stats) <= MAX_BOXES:
            ax.bxp([stats[i] for i in order], showfliers=False, widths=0.8,
                   medianprops={"color": "#d95f02"}, boxprops={"linewidth": 0.5},
                   whiskerprops={"linewidth": 0.5}, capprops={"linewidth": 0.5},
                   flierprops={}, meanprops={},
                   **{k: plt.rcParams[f"boxplot.{r}"] for k, r in BOX_RC.items()})
            ax.set_xlabel(f"{mat.shape[0]} samples (sorted by median)")
        else:
            _box_bands(ax, [stats[i] for i in order])
            ax.set_xlabel(f"{mat.shape[0]} samples (sorted by median)\ndark: 25-75 %, light: "
                          "whiskers (1.5 x IQR), line: median", fontsize=8)
        ax.set_xticks([])
        ax.set_ylabel(ylab)
        # one extreme sample cannot squeeze all (in place: the values are a copy already)
        lo, hi = np.percentile(finite, [0.5, 99.5], overwrite_input=True)
        del finite
        pad = 0.05 * (hi - lo or 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    # what the filters dropped, and why
    ax = axes[2]
    rows = [("features in the table", steps.get("features_in", raw.n_vars), "#999999")]
    rows += [(f"dropped: {why}", steps[k], "#e7298a") for k, why in FILTER_REASONS.items()
             if steps.get(k)]
    rows.append(("kept for MOFA+", norm.n_vars, "#1b9e77"))
    ypos = np.arange(len(rows))[::-1]
    ax.barh(ypos, [r[1] for r in rows], color=[r[2] for r in rows])
    ax.set_yticks(ypos, [r[0] for r in rows], fontsize=7)
    for y, (_, n, _) in zip(ypos, rows, strict=True):
        ax.text(n, y, f" {n:,}", va="center", fontsize=7)
    ax.set_xlabel("features")
    ax.set_xlim(0, max(r[1] for r in rows) * 1.25)
    ax.set_title("feature filters")
    if any_missing:
        ax = axes[3]
        ax.hist([miss, miss_after], bins=np.linspace(0, 1, 21), color=["#999999", "#1b9e77"],
                label=["all features", "kept features"])
        ax.set_yscale("log")
        ax.set_xlabel("fraction of samples missing / below detection")
        ax.set_ylabel("features (log scale)")
        ax.legend(frameon=False, fontsize=7, loc="upper right")
        ax.set_title("missing values")
    fig.suptitle(f"{name} ({kind}): {norm.n_obs} samples, {norm.n_vars:,} of "
                 f"{raw.n_vars:,} features kept", fontsize=10)
    fig.tight_layout()
    return save(fig, stem)


def variance_explained(r2: pd.DataFrame, r2_total: pd.Series,
                       stem: str | os.PathLike[str]) -> list[Path]:
    """Heatmap of % variance explained per view x factor, and the total per view."""
    fig, axes = plt.subplots(1, 2, figsize=(2.5 + 0.6 * r2.shape[1], 1.2 + 0.45 * r2.shape[0]),
                             gridspec_kw={"width_ratios": [r2.shape[1], 2.5]}, sharey=True)
    im = axes[0].imshow(r2.to_numpy(), cmap="Blues", aspect="auto", vmin=0,
                        vmax=max(float(r2.to_numpy().max()), 1e-9))
    for (i, j), v in np.ndenumerate(r2.to_numpy()):
        axes[0].text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                     color="white" if v > 0.6 * r2.to_numpy().max() else "black")
    axes[0].set_xticks(range(r2.shape[1]), [c.replace("Factor", "F") for c in r2.columns])
    axes[0].set_yticks(range(r2.shape[0]), r2.index)
    axes[0].set_title("% variance explained per factor")
    fig.colorbar(im, ax=axes[0], fraction=0.03, pad=0.01)
    axes[1].barh(range(len(r2_total)), r2_total.loc[r2.index].to_numpy(), color="#1b9e77")
    axes[1].set_xlabel("% total")
    axes[1].set_title("all factors")
    fig.tight_layout()
    return save(fig, stem)


def variance_explained_groups(table: pd.DataFrame, stem: str | os.PathLike[str]
                              ) -> list[Path]:
    """Per MOFA+ group, % variance explained per view x factor (one heatmap per group, one
    colour scale) and the total per view and group (bars); ``table`` as in
    ``mofa/variance_explained_groups.tsv`` (its pooled rows are left out)."""
    from .io import POOLED

    t = table[table["group"].astype(str) != POOLED]
    groups = list(dict.fromkeys(t["group"].astype(str)))
    per = t[t["factor"] != "total"]
    views = list(dict.fromkeys(per["view"]))
    factors = list(dict.fromkeys(per["factor"]))
    vmax = max(float(per["r2_percent"].max()), 1e-9)
    fig, axes = plt.subplots(len(groups) + 1, 1, figsize=(2.5 + 0.6 * len(factors),
                             1.0 + (len(groups) + 1) * (0.5 + 0.4 * len(views))),
                             layout="constrained")
    for ax, g in zip(axes[:-1], groups, strict=True):
        m = (per[per["group"].astype(str) == g].pivot(index="view", columns="factor",
                                                      values="r2_percent")
             .reindex(index=views, columns=factors))
        im = ax.imshow(m.to_numpy(), cmap="Blues", aspect="auto", vmin=0, vmax=vmax)
        for (i, j), v in np.ndenumerate(m.to_numpy()):
            ax.text(j, i, "not measured" if np.isnan(v) and j == 0 else
                    "" if np.isnan(v) else f"{v:.1f}", ha="left" if np.isnan(v) else "center",
                    va="center", fontsize=7, color="white" if v > 0.6 * vmax else "black")
        ax.set_xticks(range(len(factors)), [c.replace("Factor", "F") for c in factors])
        ax.set_yticks(range(len(views)), views)
        ax.set_title(f"group {g}: % variance explained per factor", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    tot = (t[t["factor"] == "total"].assign(group=lambda d: d["group"].astype(str))
           .pivot(index="view", columns="group", values="r2_percent")
           .reindex(index=views, columns=groups))
    width = 0.8 / max(len(groups), 1)
    for i, g in enumerate(groups):
        axes[-1].bar(np.arange(len(views)) + i * width, tot[g].to_numpy(), width,
                     color=PALETTE[i % len(PALETTE)], label=g)
    axes[-1].set_xticks(np.arange(len(views)) + 0.4 - width / 2, views)
    axes[-1].set_ylabel("% total, all factors")
    axes[-1].legend(title="group", frameon=False, fontsize=8, title_fontsize=8,
                    loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save(fig, stem)


def factor_scatter(factors: pd.DataFrame, y: pd.Series | None, assoc: pd.DataFrame | None,
                   outcome: str | None, stem: str | os.PathLike[str]) -> list[Path]:
    """The two factors most associated with the outcome, coloured by it; and the top factor."""
    cols = list(factors.columns)
    if assoc is not None and "p" in assoc:
        top = list(assoc.sort_values(["p", "factor"])["factor"][:2])
    else:
        top = cols[:2]
    if len(top) < 2:
        top = (top + cols)[:2] if len(cols) > 1 else [cols[0], cols[0]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    yv = y.reindex(factors.index) if y is not None else pd.Series(np.nan, index=factors.index)
    colours, cmap = colours_for(yv)
    axes[0].scatter(factors[top[0]], factors[top[1]], c=colours, s=18, edgecolor="none")
    axes[0].set_xlabel(top[0])
    axes[0].set_ylabel(top[1])
    axes[0].set_title(f"samples on {top[0]} and {top[1]}")
    if cmap:
        _legend(axes[0], cmap, outcome or "outcome", missing=bool(yv.isna().any()))
    ax = axes[1]
    if cmap:
        levels = list(cmap)
        data = [factors.loc[yv.astype(str) == lev, top[0]].to_numpy() for lev in levels]
        ax.boxplot(data, showfliers=False, widths=0.5)
        rng = np.random.default_rng(0)
        for i, d in enumerate(data):
            ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, len(d)), d, s=10,
                       color=cmap[levels[i]], edgecolor="none")
        ax.set_xticks(range(1, len(levels) + 1), levels)
        if assoc is not None and "q" in assoc:
            q = float(assoc.set_index("factor").loc[top[0], "q"])
            ax.set_title(f"{top[0]} by {outcome} (BH q = {q:.2g})")
        ax.set_ylabel(top[0])
    else:
        ax.hist(factors[top[0]], bins=20, color="#1b9e77")
        ax.set_xlabel(top[0])
        ax.set_title("no outcome set")
    return save(fig, stem)


def umap_clusters(umap: np.ndarray, clusters: pd.Series, y: pd.Series | None,
                  outcome: str | None, stem: str | os.PathLike[str]) -> list[Path]:
    """UMAP of the factors coloured by cluster and by outcome."""
    n_panels = 2 if y is not None else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(6 * n_panels, 4), squeeze=False,
                             layout="constrained")
    panels = [("cluster", clusters)] + ([(outcome or "outcome", y)] if y is not None else [])
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        colours, cmap = colours_for(values.reset_index(drop=True))
        ax.scatter(umap[:, 0], umap[:, 1], c=colours, s=18, edgecolor="none")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_title(f"coloured by {title}")
        _legend(ax, cmap, title, missing=bool(values.isna().any()))
    return save(fig, stem)


def biomarker_heatmap(values: pd.DataFrame, ranked: pd.DataFrame, clusters: pd.Series,
                      y: pd.Series | None, outcome: str | None,
                      stem: str | os.PathLike[str]) -> list[Path]:
    """Top features (rows, z-scored) x samples (columns, grouped by cluster then outcome).

    ``values``: samples x "<omic>:<feature>" normalised values (NaN where not measured).
    """
    keys = [f"{o}:{f}" for o, f in zip(ranked["omic"], ranked["feature"], strict=True)]
    mat = values[keys]
    z = (mat - mat.mean()) / mat.std(ddof=0).replace(0, np.nan)
    order_df = pd.DataFrame({"cluster": clusters.reindex(z.index).astype(str)})
    if y is not None:
        order_df["y"] = y.reindex(z.index).astype(str)
    order = order_df.sort_values(list(order_df.columns), kind="mergesort").index
    z = z.loc[order]
    h = 1.6 + 0.22 * len(keys)
    fig = plt.figure(figsize=(11, h))
    n_bars = 2 if y is not None else 1
    gs = fig.add_gridspec(n_bars + 1, 2, height_ratios=[0.25] * n_bars + [len(keys) * 0.22],
                          width_ratios=[40, 1], hspace=0.05, wspace=0.02)
    bars = [("cluster", clusters.reindex(order))]
    if y is not None:
        bars.append((outcome or "outcome", y.reindex(order)))
    legends = []
    for i, (title, vals) in enumerate(bars):
        ax = fig.add_subplot(gs[i, 0])
        colours, cmap = colours_for(vals)
        ax.imshow([matplotlib.colors.to_rgba_array(colours)], aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([0], [title])
        for s in ax.spines.values():
            s.set_visible(False)
        legends.append((title, cmap, bool(vals.isna().any())))
    ax = fig.add_subplot(gs[n_bars, 0])
    y0 = 1.0
    for title, cmap, missing in legends:  # stacked to the right of the colour bar
        # add_artist keeps each legend: a second ax.legend() call would replace the first
        ax.add_artist(_legend(ax, cmap, title, missing=missing, anchor=(1.07, y0)))
        y0 -= (len(cmap) + int(missing) + 1.6) * 0.22 * 1.1 / max(len(keys) * 0.22, 1.0)
    cm = matplotlib.colormaps["RdBu_r"].copy()
    cm.set_bad(MISSING_COLOUR)
    im = ax.imshow(np.ma.masked_invalid(z.to_numpy().T), aspect="auto", cmap=cm, vmin=-2.5,
                   vmax=2.5, interpolation="nearest")
    ax.set_yticks(range(len(keys)), [f"{f} ({o})" for o, f in
                                     zip(ranked["omic"], ranked["feature"], strict=True)],
                  fontsize=7)
    ax.set_xticks([])
    ax.set_xlabel(f"{len(order)} samples, grouped by cluster"
                  + (f" then {outcome}" if y is not None else "") + "; grey = not measured")
    cax = fig.add_subplot(gs[n_bars, 1])
    fig.colorbar(im, cax=cax, label="z-score")
    return save(fig, stem)


def association_heatmap(table: pd.DataFrame, stem: str | os.PathLike[str]) -> list[Path]:
    """-log10 BH q of every factor/cluster x clinical-column test; stars at q < 0.05."""
    if len(table) == 0:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no testable clinical column", ha="center", va="center")
        ax.set_axis_off()
        return save(fig, stem)
    m = table.pivot_table(index="variable", columns="clinical", values="q", aggfunc="min")
    rows = [r for r in m.index if r != "cluster"] + (["cluster"] if "cluster" in m.index else [])
    rows = sorted(rows[:-1] if "cluster" in rows else rows,
                  key=lambda r: int(r.replace("Factor", "")) if r.startswith("Factor") else 0
                  ) + (["cluster"] if "cluster" in m.index else [])
    m = m.loc[rows]
    v = -np.log10(m.clip(lower=1e-300))
    fig, ax = plt.subplots(figsize=(1.6 + 0.42 * m.shape[1], 1.2 + 0.32 * m.shape[0]))
    cm = matplotlib.colormaps["Reds"].copy()
    cm.set_bad(MISSING_COLOUR)
    im = ax.imshow(np.ma.masked_invalid(v.to_numpy()), cmap=cm, aspect="auto", vmin=0,
                   vmax=max(3.0, float(np.nanmax(v.to_numpy()))))
    for (i, j), q in np.ndenumerate(m.to_numpy()):
        if q < 0.05:
            ax.text(j, i, "*" if q >= 0.001 else "**", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(m.shape[1]), m.columns, rotation=60, ha="right")
    ax.set_yticks(range(m.shape[0]), m.index)
    fig.colorbar(im, ax=ax, label="-log10 q (BH)", fraction=0.04)
    ax.set_title("factors and clusters vs clinical variables (* q<0.05, ** q<0.001)")
    fig.tight_layout()
    return save(fig, stem)


def survival_by_cluster(surv: pd.DataFrame | None, clusters: pd.Series, p_value: float | None,
                        stem: str | os.PathLike[str],
                        title: str = "survival by patient cluster",
                        time_label: str = "time") -> list[Path]:
    """Kaplan-Meier curves per group (lifelines) with the log-rank p-value and the number of
    patients at risk under the axis (lifelines' add_at_risk_counts)."""
    if surv is None or len(surv) == 0:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.text(0.5, 0.5, "no survival columns configured (config: survival)", ha="center",
                va="center")
        ax.set_axis_off()
        return save(fig, stem)
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    df = surv.join(clusters.rename("cluster"), how="inner").dropna()
    _, cmap = colours_for(df["cluster"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6 + 0.25 * len(cmap)))
    fitters = []
    for lev, colour in cmap.items():
        d = df[df["cluster"].astype(str) == lev]
        kmf = KaplanMeierFitter(label=f"{lev} (n={len(d)}, events={int(d['event'].sum())})")
        kmf.fit(d["time"], d["event"])
        kmf.plot_survival_function(ax=ax, ci_show=False, color=colour, show_censors=True,
                                   censor_styles={"ms": 4, "marker": "|"})
        fitters.append(kmf)
    ax.set_xlabel(time_label)
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    if p_value is not None:
        title += f" (log-rank p = {p_value:.2g})"
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"],
                       labels=[str(lev) for lev in cmap])
    fig.tight_layout()
    return save(fig, stem)


def prediction_plots(preds: pd.DataFrame, summary: pd.DataFrame, endpoint: str,
                     roc_stem: str | os.PathLike[str],
                     cal_stem: str | os.PathLike[str]) -> list[Path]:
    """ROC curves (out-of-fold, first repeat) per model, and calibration of the best model."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    p_cols = [c for c in preds.columns if c.startswith("p_")]
    first = preds[preds["repeat"] == 1]
    fig, ax = plt.subplots(figsize=(5, 4.4))
    fig2, ax2 = plt.subplots(figsize=(5, 4.4))
    if len(p_cols) == 2:
        pos = p_cols[1][2:]
        aucs = summary[summary["metric"] == "auc"].set_index("model")
        for i, (model, d) in enumerate(first.groupby("model", sort=False)):
            fpr, tpr, _ = roc_curve(d["observed"].astype(str) == pos, d[p_cols[1]])
            ci = aucs.loc[model]
            ax.plot(fpr, tpr, color=PALETTE[i % len(PALETTE)],
                    label=f"{model}: AUC {ci['mean']:.2f} ({ci['ci_low']:.2f}-"
                          f"{ci['ci_high']:.2f})")
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{endpoint}: '{pos}' vs rest, out-of-fold")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
        best = str(summary.loc[summary["selected"], "model"].iloc[0]) \
            if "selected" in summary and summary["selected"].any() else \
            aucs.drop(index="baseline", errors="ignore")["mean"].idxmax()
        d = preds[preds["model"] == best]
        frac, mean_p = calibration_curve(d["observed"].astype(str) == pos, d[p_cols[1]],
                                         n_bins=5, strategy="quantile")
        ax2.plot(mean_p, frac, marker="o", color=PALETTE[0], label=best)
        ax2.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--")
        ax2.set_xlabel(f"predicted probability of '{pos}'")
        ax2.set_ylabel("observed fraction")
        ax2.set_title(f"calibration of the {best} model (all repeats)")
        ax2.legend(frameon=False, fontsize=8)
    elif p_cols:  # three or more classes: one-vs-rest ROC of each class, inner-CV choice
        model = "inner_cv_choice" if (first["model"] == "inner_cv_choice").any() else \
            str(first["model"].iloc[0])
        d = first[first["model"] == model]
        for i, c in enumerate(p_cols):
            truth = d["observed"].astype(str) == c[2:]
            if 0 < truth.sum() < len(truth):
                fpr, tpr, _ = roc_curve(truth, d[c])
                ax.plot(fpr, tpr, color=PALETTE[i % len(PALETTE)],
                        label=f"{c[2:]} vs rest (n={int(truth.sum())})")
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{endpoint}: each class vs rest, out-of-fold ({model})")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
        # calibration of each class against the rest (all repeats): a reliability curve per
        # class, quantile bins so that rare classes still get points where their
        # probabilities lie
        dall = preds[preds["model"] == model]
        for i, c in enumerate(p_cols):
            truth = dall["observed"].astype(str) == c[2:]
            if 0 < truth.sum() < len(truth):
                bins = int(min(5, max(2, truth.sum() // 5)))
                frac, mean_p = calibration_curve(truth, dall[c], n_bins=bins,
                                                 strategy="quantile")
                ax2.plot(mean_p, frac, marker="o", color=PALETTE[i % len(PALETTE)],
                         label=f"{c[2:]} (n={int(truth.sum() / dall['repeat'].nunique())})")
        ax2.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls="--")
        ax2.set_xlim(0, 1)
        ax2.set_ylim(0, 1)
        ax2.set_xlabel("predicted probability of the class")
        ax2.set_ylabel("observed fraction of the class")
        ax2.set_title(f"calibration per class vs rest ({model}, all repeats)")
        ax2.legend(frameon=False, fontsize=8, loc="upper left")
    else:
        for a, msg in ((ax, "ROC curves are drawn for classes only"),
                       (ax2, "calibration is drawn for classes only")):
            if not p_cols:
                msg = "numeric endpoint: see metrics.tsv (R2, MAE)"
            a.text(0.5, 0.5, msg, ha="center", va="center")
            a.set_axis_off()
    fig.tight_layout()
    fig2.tight_layout()
    return save(fig, roc_stem) + save(fig2, cal_stem)
