rule normalize:
    """Type-aware normalisation, filtering and optional ComBat of one omic, plus its QC plot."""
    input:
        h5ad=f"{R}/ingest/{{omic}}.h5ad",
        samples=SAMPLES,
    output:
        h5ad=f"{R}/normalize/{{omic}}.h5ad",
        png=report(
            f"{R}/plots/qc_{{omic}}.png",
            caption="../report/qc.rst",
            category="1. Quality control",
            labels={"omic": "{omic}"},
        ),
        svg=f"{R}/plots/qc_{{omic}}.svg",
    log:
        f"{LOGS}/normalize/{COHORT}/{{omic}}.log",
    benchmark:
        f"{BENCH}/normalize/{COHORT}/{{omic}}.tsv"
    conda:
        "../../envs/normalize.yaml"
    threads: 1
    params:
        omic=lambda w: config["omics"][w.omic],
        batch=config["normalize"]["batch"],
        seed=config["integrate"]["seed"],
    script:
        "../scripts/run_normalize.py"


rule mudata:
    """Collect the normalised omics into one MuData; report the sample overlap."""
    input:
        unpack(normalized_h5ads),
        samples=SAMPLES,
    output:
        h5mu=f"{R}/normalize/{COHORT}_normalized.h5mu",
        overlap=report(
            f"{R}/qc/sample_overlap.tsv",
            caption="../report/overlap.rst",
            category="1. Quality control",
        ),
    log:
        f"{LOGS}/mudata/{COHORT}.log",
    conda:
        "../../envs/normalize.yaml"
    threads: 1
    params:
        omics=OMICS,
    script:
        "../scripts/run_mudata.py"
