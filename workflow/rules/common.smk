# Helpers shared by the stage files: config validation at parse time, output paths.
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from omix.config import check_config  # noqa: E402
from omix.errors import OmixError  # noqa: E402
from omix.recovery import clear_stale_locks  # noqa: E402


report: "../report/workflow.rst"


def _validated_config():
    source = ", ".join(map(str, workflow.configfiles)) or "config"
    try:
        return check_config(config, source=source, workdir=".")
    except OmixError as err:  # one line, no traceback: the user fixes the config
        sys.stderr.write(f"ERROR [config] {err.one_line()}\n")
        sys.exit(1)


config.update(_validated_config())

if workflow.is_main_process and workflow.local_exec and clear_stale_locks("."):
    sys.stderr.write("NOTE: removed a stale lock left by an interrupted run\n")

COHORT = config["cohort"]
OMICS = list(config["omics"])
R = f"results/{COHORT}"
SAMPLES = f"{R}/samples.tsv"
ENDPOINT = config["predict"]["endpoint"] or config["outcome"]  # None: no prediction
LOGS = "logs"
BENCH = "benchmarks"


wildcard_constraints:
    omic="|".join(OMICS),
    shard=r"\d+",
    restart=r"\d+",
    name="|".join(config["apply"]) or "NO_APPLY_COHORT",


def omic_input(wildcards):
    return config["omics"][wildcards.omic]["path"]


def mapping_output():
    """The user's ID -> pseudonym file, outside results/ (checked), when pseudonymising."""
    p = config["privacy"]
    return [p["mapping_file"]] if p["pseudonymize"] else []


def sample_map_input(wildcards):
    m = config["sample_id"].get("map")
    return [m] if m else []


def normalized_h5ads(wildcards=None):
    return {o: f"{R}/normalize/{o}.h5ad" for o in OMICS}


def mofa_restarts():
    """One model file per MOFA+ restart (integrate.restarts of them)."""
    n = config["integrate"]["restarts"]
    return [f"{R}/mofa/restarts/restart_{i}.hdf5" for i in range(n)]


APPLY_TABLES = {
    "factors": "factors.tsv",
    "clusters": "clusters.tsv",
    "predictions": "predictions.tsv",
    "metrics": "metrics.tsv",
    "drift": "drift.tsv",
    "missing": "missing_features.tsv",
    "contributions": "contributions.tsv",
    "qc": "qc.tsv",
    "drivers": "drivers.tsv",
}


def bundle_inputs(wildcards=None):
    """What the frozen bundle is made of; the predictor only when there is an endpoint."""
    inputs = {f"norm_{o}": p for o, p in normalized_h5ads().items()}
    inputs.update(
        h5mu=f"{R}/{COHORT}.h5mu",
        model=f"{R}/mofa/model.hdf5",
        clusters=f"{R}/clusters.tsv",
        samples=SAMPLES,
    )
    if ENDPOINT is not None:
        inputs.update(
            predictor=f"{R}/predict/final_model.joblib",
            metrics=f"{R}/predict/metrics.tsv",
        )
    return inputs


def apply_inputs(wildcards):
    """A cohort to score: its bundle, its ingested omics and its sheet."""
    a = config["apply"][wildcards.name]
    inputs = {
        f"omic_{o}": f"{R}/apply/{wildcards.name}/ingest/{o}.h5ad" for o in a["omics"]
    }
    inputs.update(
        bundle=f"{a['model']}/frozen.json",
        samples=f"{R}/apply/{wildcards.name}/samples.tsv",
    )
    return inputs


def apply_mapping_output():
    """ID -> pseudonym table of a scored cohort ({name}), next to the discovery's mapping."""
    p = config["privacy"]
    if not p["pseudonymize"]:
        return []
    m = Path(p["mapping_file"])
    return [str(m.with_name(f"{m.stem}.apply_{{name}}{m.suffix}"))]


def apply_outputs():
    out = []
    for name in config["apply"]:
        out += [f"{R}/apply/{name}/{v}" for v in APPLY_TABLES.values()]
        out.append(f"{R}/apply/{name}/patients/index.html")
    return out


def stability_shards():
    """Shard outputs of stability selection; none without an outcome to select for."""
    if config["outcome"] is None:
        return []
    n = config["select"]["shards"]
    return [f"{R}/biomarkers/stability/shard_{i}.tsv" for i in range(n)]


def rf_importance_output():
    """Random-forest importance table; none without an outcome or with select.rf false."""
    if config["outcome"] is None or not config["select"]["rf"]:
        return []
    return [f"{R}/biomarkers/rf_importance.tsv"]


def bias_columns():
    """The bias check's columns: bias.columns, and the groups column if it is not among them."""
    cols = list(config["bias"]["columns"])
    if config["groups"] is not None and config["groups"] not in cols:
        cols.append(config["groups"])
    return cols


def per_omic_ranked(wildcards=None):
    return {o: f"{R}/biomarkers/ranked_{o}.tsv" for o in OMICS}


PLOTS = ["variance_explained", "factors_outcome", "umap_clusters", "biomarker_heatmap"]
ASSOCIATION_PLOTS = ["associations", "survival_clusters"]


def survival_predicted():
    return bool(
        (config.get("survival") or {}).get("event") and config["predict"]["survival"]
    )


def overview_inputs(wildcards=None):
    """The cohort-level tables the report's first page and key tables are made from (named
    as in omix.summary.TABLES)."""
    out = {
        "overlap": f"{R}/qc/sample_overlap.tsv",
        "variance": f"{R}/mofa/variance_explained.tsv",
        "ranked": f"{R}/biomarkers/ranked.tsv",
        "clusters": f"{R}/clusters.tsv",
        "clusters_vs_outcome": f"{R}/clusters_vs_outcome.tsv",
        "resolution": f"{R}/cluster/resolution_selection.tsv",
        "associations": f"{R}/associations/associations.tsv",
    }
    if ENDPOINT is not None:
        out["metrics"] = f"{R}/predict/metrics.tsv"
    if survival_predicted():
        out["survival"] = f"{R}/predict/survival_metrics.tsv"
    return out


OVERVIEW_TABLES = ["biomarkers", "prediction", "survival", "associations", "clustering"]


def all_outputs():
    out = [
        f"{R}/{COHORT}.h5mu",
        f"{R}/mofa/model.hdf5",
        f"{R}/mofa/variance_explained.tsv",
        f"{R}/mofa/variance_explained_groups.tsv",
        f"{R}/biomarkers/ranked.tsv",
        *per_omic_ranked().values(),
        f"{R}/clusters.tsv",
        f"{R}/clusters_vs_outcome.tsv",
        f"{R}/qc/sample_overlap.tsv",
        f"{R}/manifest.json",
        f"{R}/associations/associations.tsv",
        f"{R}/associations/bias.tsv",
    ]
    plots = PLOTS + ASSOCIATION_PLOTS + [f"qc_{o}" for o in OMICS]
    if ENDPOINT is not None:
        out += [f"{R}/predict/metrics.tsv", f"{R}/predict/importance.tsv"]
        plots += ["roc", "calibration"]
    if survival_predicted():
        out += [f"{R}/predict/survival_metrics.tsv"]
        plots += ["survival_risk_groups"]
    if config["groups"] is not None:  # per MOFA+ group (rule by_group)
        out += [f"{R}/groups/associations.tsv", f"{R}/groups/clusters.tsv"]
        plots += ["variance_explained_groups"]
    for p in plots:
        out += [f"{R}/plots/{p}.png", f"{R}/plots/{p}.svg"]
    out += [f"{R}/report/overview.html"]
    out += [f"{R}/report/tables/{t}.html" for t in OVERVIEW_TABLES]
    out += [f"{R}/model/manifest.json", *apply_outputs()]
    return out
