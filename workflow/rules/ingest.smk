rule samples:
    """Validated sample sheet used by every later step (pseudonymised if asked)."""
    input:
        samples=config["samples"],
    output:
        tsv=SAMPLES,
        mapping=mapping_output(),
    log:
        f"{LOGS}/samples/{COHORT}.log",
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    params:
        privacy=config["privacy"],
    script:
        "../scripts/run_samples.py"


rule ingest:
    """Read one omic table, check it, map its labels to sample IDs: raw AnnData."""
    input:
        table=omic_input,
        samples=config["samples"],
        sample_map=sample_map_input,
    output:
        h5ad=f"{R}/ingest/{{omic}}.h5ad",
    log:
        f"{LOGS}/ingest/{COHORT}/{{omic}}.log",
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    params:
        omic=lambda w: config["omics"][w.omic],
        sample_id=config["sample_id"],
        privacy=config["privacy"],
    script:
        "../scripts/run_ingest.py"


rule manifest:
    """Checksums of every input and the resolved config, for provenance."""
    input:
        tables=[config["omics"][o]["path"] for o in OMICS],
        samples=config["samples"],
    output:
        json=f"{R}/manifest.json",
    log:
        f"{LOGS}/manifest/{COHORT}.log",
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    params:
        config=config,
        omics=OMICS,
    script:
        "../scripts/run_manifest.py"
