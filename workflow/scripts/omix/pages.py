"""Patient pages: one printable HTML page per scored patient and an index, rendered from
the Jinja2 templates in ``omix/templates/`` with one stylesheet (plots inline as SVG)."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from .bundle import Bundle
from .errors import AnalysisError, eta, progress
from .html import environment
from .io import atomic_path
from .io import floats_from_json as _array

log = logging.getLogger("omix.pages")
PathLike = str | os.PathLike[str]


@dataclass
class _Pages:
    """What every page of one cohort is rendered from (shared by forked workers)."""
    out: Path
    bundle: Bundle
    factors: pd.DataFrame
    clusters: pd.DataFrame      # by sample_id
    predictions: pd.DataFrame   # by sample_id
    qc: pd.DataFrame            # by sample_id
    contributions: dict[Any, pd.DataFrame]
    drivers: dict[Any, pd.DataFrame]
    drift_flags: list[str]
    cohort_name: str


_SHARED: dict[str, Any] = {}   # the forked workers' view of the cohort (see patient_pages)


def patient_pages(outdir: PathLike, *, bundle: Bundle, factors: pd.DataFrame,
                  clusters: pd.DataFrame, predictions: pd.DataFrame,
                  contributions: pd.DataFrame, qc: pd.DataFrame, drift: pd.DataFrame,
                  cohort_name: str, drivers: pd.DataFrame | None = None,
                  workers: int = 1) -> list[Path]:
    """One small HTML page per patient and an index, plots inline (SVG), no external files.

    IDs shown are those of the results (pseudonyms when pseudonymisation is on).  Pages are
    independent, so ``workers`` forked processes render every ``workers``-th patient each
    (Linux; one process elsewhere); a page is the same whichever process renders it.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    drift_warn = drift[drift["warning"]]
    ctx = _Pages(
        out=out, bundle=bundle, factors=factors, clusters=clusters.set_index("sample_id"),
        predictions=predictions.set_index("sample_id"), qc=qc.set_index("sample_id"),
        contributions=dict(tuple(contributions.groupby("sample_id", sort=False))),
        drivers={} if drivers is None else dict(tuple(drivers.groupby("sample_id",
                                                                      sort=False))),
        drift_flags=[f"cohort drift: {r['level']} {r['name']}" for _, r in drift_warn.iterrows()],
        cohort_name=cohort_name)
    sids = list(factors.index)
    workers = max(1, min(workers, len(sids))) if sys.platform.startswith("linux") else 1
    t0 = time.monotonic()
    _SHARED["pages"] = ctx
    _SHARED["chunks"] = [sids[k::workers] for k in range(workers)]
    try:
        if workers == 1:
            done = [_render_chunk(0)]
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            try:
                with ProcessPoolExecutor(
                        workers, mp_context=multiprocessing.get_context("fork")) as pool:
                    done = list(pool.map(_render_chunk, range(workers)))
            except BrokenProcessPool:
                raise AnalysisError(
                    "a process rendering patient pages died (killed by the system, most often "
                    "for lack of memory)", hint="render them in one process (snakemake "
                    "--set-threads patient_report=1) or give the job more memory") from None
    finally:
        _SHARED.clear()
    by_sid = {sid: path for chunk in done for sid, path in chunk}
    pages = [by_sid[sid] for sid in sids]
    _write_index(ctx)
    log.info("patient pages: %d in %.0f s (%d process(es))", len(pages),
             time.monotonic() - t0, workers)
    return pages


def _render_chunk(k: int) -> list[tuple[Any, Path]]:
    """Worker ``k`` (forked, or the calling process when there is one): render every
    ``workers``-th patient's page from the ``k``-th on; the first reports progress for all."""
    ctx, chunks = _SHARED["pages"], _SHARED["chunks"]
    sids, n = chunks[k], len(ctx.factors)
    out, t0 = [], time.monotonic()
    last = t0
    for i, sid in enumerate(sids):
        out.append((sid, _render_page(ctx, sid)))
        now = time.monotonic()
        if k == 0 and now - last > 10:
            last = now
            progress(log, "patient pages: about %d/%d, %s left", min(n, (i + 1) * len(chunks)),
                     n, eta((now - t0) / (i + 1) * (len(sids) - i - 1)))
    return out


def _render_page(ctx: _Pages, sid: Any) -> Path:
    """One patient's page: stratum and survival, factors, drivers of the prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import io as _io

    import matplotlib.pyplot as plt

    from . import pl  # noqa: F401  (deterministic SVG settings)

    bundle, factors = ctx.bundle, ctx.factors
    zref = bundle.reference_factors
    surv = bundle.frozen.get("survival")
    cv = bundle.predictor.get("cv", {})
    endpoint = bundle.predictor.get("endpoint")
    cl = ctx.clusters.loc[sid]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))
    ax = axes[0]
    if surv and surv.get("curves"):
        for c, cur in sorted(surv["curves"].items()):
            mine = c == cl["cluster"]
            ax.step(_array(cur["time"]), _array(cur["survival"]), where="post",
                    lw=2.5 if mine else 1, color="#d95f02" if mine else "#999999",
                    label=f"{c} (n={cur['n']})" + (" - this patient" if mine else ""))
        ax.set_xlabel(surv.get("time_label", surv.get("time_column", "time")))
        ax.set_ylabel("survival (discovery)")
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False, fontsize=7)
    else:
        ax.text(0.5, 0.5, "no survival data in the discovery bundle", ha="center",
                va="center", fontsize=8)
        ax.set_axis_off()
    ax.set_title(f"stratum {cl['cluster']}")
    ax = axes[1]
    zs = (factors.loc[sid] - zref.mean()) / zref.std(ddof=1)
    ax.barh(list(zs.index)[::-1], zs.to_numpy()[::-1],
            color=["#d95f02" if abs(v) > 2 else "#7570b3" for v in zs.to_numpy()[::-1]])
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("factor value (discovery SD units)")
    ax.set_title("factors")
    ax = axes[2]
    c = ctx.contributions.get(sid, _NO_ROWS).head(8)
    if len(c):
        ax.barh(list(c["variable"])[::-1], c["contribution"].to_numpy()[::-1],
                color=["#1b9e77" if v > 0 else "#e7298a" for v in c["contribution"][::-1]])
        ax.axvline(0, color="black", lw=0.5)
        pos = [k[2:] for k in ctx.predictions.columns if k.startswith("p_")]
        if bundle.predictor.get("kind") in ("random_forest", "stacked"):  # occlusion
            ax.set_xlabel("change of the prediction when set to the discovery median")
        elif len(pos) > 2:
            ax.set_xlabel("contribution to the log-odds of the predicted class")
        else:
            ax.set_xlabel(f"contribution to the log-odds of {pos[-1]}" if pos
                          else "contribution to the predicted value")
    else:
        ax.set_axis_off()
    ax.set_title("top drivers of the prediction")
    fig.tight_layout()
    buf = _io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    figure = buf.getvalue()
    figure = figure[figure.index("<svg"):]

    pred = ctx.predictions.loc[sid]
    q = ctx.qc.loc[sid]
    flags = [f for f in str(q["flags"]).split(";") if f] + ctx.drift_flags
    body = environment().get_template("patient.html.j2").render(
        sid=sid, cohort=ctx.cohort_name, discovery=bundle.manifest["discovery_cohort"],
        n_discovery=bundle.manifest["n_samples"], cluster=cl["cluster"],
        agreement=float(cl["agreement"]), n_neighbors=bundle.frozen["reference"][
            "n_neighbors"], figure=Markup(figure), flags=flags,
        prediction=_prediction(pred, endpoint, cv),
        drivers=_drivers(ctx.drivers.get(sid, _NO_ROWS)))
    path = ctx.out / f"{_safe(sid)}.html"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(body)
    return path


_NO_ROWS = pd.DataFrame()


def _write_index(ctx: _Pages) -> None:
    """The cohort's index page: one row per patient, linking its page."""
    pr, cl_all, fl_all = ctx.predictions, ctx.clusters["cluster"], ctx.qc["flags"]
    bundle = ctx.bundle
    endpoint = bundle.predictor.get("endpoint")
    observed = "observed" in pr.columns and pr["observed"].notna().any()
    rows = []
    for sid in ctx.factors.index:
        r = pr.loc[sid]
        pcol = f"p_{r.get('predicted')}"
        rows.append({"sid": sid, "href": f"{_safe(sid)}.html", "cluster": cl_all.loc[sid],
                     "predicted": r.get("predicted", ""),
                     "probability": f"{r[pcol]:.2f}" if pcol in r.index else "",
                     "observed": "" if not observed or pd.isna(r.get("observed")) else
                     r["observed"],
                     "flags": [f for f in str(fl_all.loc[sid]).split(";") if f]})
    index = environment().get_template("index.html.j2").render(
        cohort=ctx.cohort_name, discovery=bundle.manifest["discovery_cohort"], rows=rows,
        endpoint=endpoint if "predicted" in pr.columns else None, observed=observed)
    with atomic_path(ctx.out / "index.html") as tmp:
        Path(tmp).write_text(index)


def _prediction(p: pd.Series, endpoint: Any, cv: dict[str, Any]) -> dict[str, Any] | None:
    """What the page says about the prediction: class, probabilities, the honest estimate,
    how much of it rests on imputed variables."""
    if "predicted" not in p.index:
        return None
    metric = "auc" if "auc" in cv else "r2" if "r2" in cv else None
    n_miss, n_var = int(p.get("model_variables_missing", 0)), int(p.get("model_variables", 0))
    return {"endpoint": str(endpoint), "predicted": str(p["predicted"]),
            "probabilities": [(k[2:], float(p[k])) for k in p.index if k.startswith("p_")],
            "estimate": None if metric is None else {
                "metric": metric.upper(), "mean": cv[metric]["mean"],
                "low": cv[metric]["ci_low"], "high": cv[metric]["ci_high"]},
            "n_missing": n_miss, "n_variables": n_var,
            "caution": bool(n_var and n_miss > 0.5 * n_var)}


def _drivers(drv: pd.DataFrame) -> dict[str, Any] | None:
    """The measured variables behind the prediction (or behind its leading factor)."""
    if not len(drv):
        return None
    lead = str(drv["factor"].iloc[0])
    direct = lead == "(direct)"
    return {"title": "Measured variables behind the prediction" if direct
            else f"Measurements behind {lead}",
            "what": "contribution to the prediction" if direct
            else "evidence for the factor (w tau y)",
            "rows": [{"omic": r["omic"], "feature": r["feature"],
                      "value": float(r["value_sd_units"]), "share": float(r["share"])}
                     for _, r in drv.iterrows()]}


def _safe(sid: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(sid))
