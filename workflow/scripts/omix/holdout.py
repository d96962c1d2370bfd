"""``make holdout``: hold back a third of a cohort, discover on the rest, score the third.

Writes, under ``results/holdout/<cohort>/`` only: a discovery sheet (two thirds of the patients,
stratified by the endpoint), a held-back sheet (the other third) and a config that runs the
discovery on the first and scores the second with the frozen bundle (``apply:``).  The input
tables are read as they are (``sample_id.ignore_unlisted``); nothing is copied or changed.

    python -m omix.holdout config/config.yaml            # writes the sheets and config
    snakemake --cores all --configfile results/holdout/tcga_acc/config.yaml
    python -m omix.holdout config/config.yaml --compare  # held-back metrics next to nested CV
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .config import check_config
from .io import read_sample_sheet, write_tsv


def split(sheet: pd.DataFrame, endpoint: str | None, fraction: float, seed: int
          ) -> tuple[pd.Index, pd.Index]:
    """(discovery, held back): ``fraction`` of each endpoint class (and of the patients
    without one) held back, chosen with a seeded generator; sheet order is kept."""
    rng = np.random.default_rng(seed)
    groups = sheet[endpoint].astype(object).where(sheet[endpoint].notna(), "__none__") \
        if endpoint else pd.Series("__all__", index=sheet.index)
    held: list[str] = []
    for _, ids in groups.groupby(groups, sort=True):
        n = round(len(ids) * fraction)
        held += list(rng.choice(ids.index.to_numpy(), size=n, replace=False))
    mask = sheet.index.isin(held)
    return sheet.index[~mask], sheet.index[mask]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--fraction", type=float, default=1 / 3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", action="store_true",
                    help="print held-back metrics next to the discovery's nested-CV estimate")
    a = ap.parse_args(argv)
    cfg = check_config(yaml.safe_load(Path(a.config).read_text()), source=a.config)
    cohort = f"{cfg['cohort']}_holdout"
    out = Path("results") / "holdout" / cfg["cohort"]
    if a.compare:
        compare(cohort)
        return
    endpoint = cfg["predict"]["endpoint"] or cfg["outcome"]
    sheet_path = Path(cfg["samples"])
    raw = pd.read_csv(sheet_path, sep="," if sheet_path.suffix == ".csv" else "\t", dtype=str,
                      keep_default_na=False)
    sheet = read_sample_sheet(sheet_path)
    disc, held = split(sheet, endpoint, a.fraction, a.seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = raw["sample_id"]
    write_tsv(raw[ids.isin(disc)], out / "discovery.tsv", float_format=None)
    write_tsv(raw[ids.isin(held)], out / "held_back.tsv", float_format=None)
    new = yaml.safe_load(Path(a.config).read_text())
    new["cohort"] = cohort
    new["samples"] = str(out / "discovery.tsv")
    new.setdefault("sample_id", {})["ignore_unlisted"] = True
    new["apply"] = {"held_back": {
        "model": f"results/{cohort}/model", "samples": str(out / "held_back.tsv"),
        "omics": {o: {k: t[k] for k in ("path", "layout", "format") if k in t}
                  for o, t in new["omics"].items()}}}
    (out / "config.yaml").write_text(
        f"# written by python -m omix.holdout {a.config} (seed {a.seed}, fraction "
        f"{a.fraction:.3f}): {len(disc)} discovery, {len(held)} held-back patients\n"
        + yaml.safe_dump(new, sort_keys=False))
    print(f"{len(disc)} discovery and {len(held)} held-back patients; run:\n"
          f"  snakemake --cores all --configfile {out / 'config.yaml'}")


def held_out_baselines(cohort: str) -> pd.DataFrame:
    """The plain reference models (L2 logistic on all standardised features, random forest)
    fitted on the discovery patients' normalised features and scored on the held-back ones,
    transformed with the frozen bundle exactly as the chosen model's inputs are."""
    from .bundle import Bundle
    from .io import read_h5mu
    from .predict import PredictOptions, estimator, feature_table
    from .score import score_metrics, transform_cohort

    r = Path("results") / cohort
    b = Bundle.load(r / "model")
    endpoint = b.predictor.get("endpoint")
    if endpoint is None:
        return pd.DataFrame(columns=["model", "metric", "value", "n"])
    mdata = read_h5mu(r / f"{cohort}.h5mu")
    y = read_sample_sheet(r / "samples.tsv")[endpoint].reindex(mdata.obs_names).dropna()
    x_tr = feature_table(mdata, list(y.index))
    ingested = r / "apply" / "held_back" / "ingest"
    views, _ = transform_cohort({o: ingested / f"{o}.h5ad" for o in b.normalization
                                 if (ingested / f"{o}.h5ad").exists()}, b)
    held = read_sample_sheet(r / "apply" / "held_back" / "samples.tsv")[endpoint].dropna()
    ids = [s for s in held.index if any(s in v.index for v in views.values())]
    x_te = pd.concat([v.reindex(ids).add_prefix(f"{o}:") for o, v in views.items()], axis=1
                     ).reindex(columns=x_tr.columns)
    # the discovery's own decision (classes or numbers), as its frozen model embodies it
    kind = "classification" if hasattr(b.predictor["model"], "classes_") else "regression"
    yy = y.astype(str) if kind == "classification" else y.astype(float)
    rows = []
    for model in ("l2_features", "random_forest"):
        est = estimator(kind, model, PredictOptions(), 3, int(yy.nunique()))
        est.fit(x_tr.to_numpy(), yy.to_numpy())
        pred = pd.DataFrame({"sample_id": ids, "predicted": est.predict(x_te.to_numpy())})
        if kind == "classification":
            for c, cls in enumerate(est.classes_):
                pred[f"p_{cls}"] = est.predict_proba(x_te.to_numpy())[:, c]
        m = score_metrics(pred, held.astype(str) if kind == "classification" else held)
        rows += [{"model": model, **row} for row in m.to_dict(orient="records")]
    return pd.DataFrame(rows)


def compare(cohort: str) -> None:
    r = Path("results") / cohort
    from .io import pooled

    cv = pooled(pd.read_csv(r / "predict" / "metrics.tsv", sep="\t"))
    final = cv.loc[cv["selected"], "model"].iloc[0]
    # the nested-CV estimate of the whole procedure (model choice inside the CV)
    honest = cv[cv["model"] == "inner_cv_choice"].set_index("metric")
    refs = cv[cv["role"] == "reference"].set_index(["model", "metric"])
    held = pd.read_csv(r / "apply" / "held_back" / "metrics.tsv", sep="\t").set_index("metric")
    base = held_out_baselines(cohort).set_index(["model", "metric"])
    print(f"model refitted on the discovery patients: {final}")
    print("model, metric, nested_cv_mean, nested_cv_ci_low, nested_cv_ci_high, held_back, "
          "n_held_back, inside_interval")
    for m in held.index:
        v = held.loc[m, "value"]
        inside = honest.loc[m, "ci_low"] <= v <= honest.loc[m, "ci_high"]
        print(f"chosen ({final}), {m}, {honest.loc[m, 'mean']:.3f}, "
              f"{honest.loc[m, 'ci_low']:.3f}, {honest.loc[m, 'ci_high']:.3f}, {v:.3f}, "
              f"{int(held.loc[m, 'n'])}, {'yes' if inside else 'NO'}")
        for model in ("l2_features", "random_forest"):
            if (model, m) in base.index and (model, m) in refs.index:
                c, h = refs.loc[(model, m)], base.loc[(model, m)]
                print(f"{model}, {m}, {c['mean']:.3f}, {c['ci_low']:.3f}, {c['ci_high']:.3f}, "
                      f"{h['value']:.3f}, {int(h['n'])}, "
                      f"{'yes' if c['ci_low'] <= h['value'] <= c['ci_high'] else 'NO'}")


if __name__ == "__main__":
    main()
