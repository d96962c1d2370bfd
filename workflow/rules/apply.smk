rule bundle:
    """Frozen discovery bundle: normalisation, MOFA+, clusters, predictor, manifest."""
    input:
        unpack(bundle_inputs),
    output:
        manifest=f"{R}/model/manifest.json",
        normalization=f"{R}/model/normalization.json",
        frozen=f"{R}/model/frozen.json",
        predictor=f"{R}/model/predictor.joblib",
    log:
        f"{LOGS}/bundle/{COHORT}.log",
    conda:
        "../../envs/apply.yaml"
    threads: 1
    params:
        omics=OMICS,
        config=config,
    script:
        "../scripts/run_bundle.py"


rule apply_samples:
    """Validated sample sheet of a cohort to score (pseudonymised if asked)."""
    input:
        samples=lambda w: config["apply"][w.name]["samples"],
    output:
        tsv=f"{R}/apply/{{name}}/samples.tsv",
        mapping=apply_mapping_output(),
    log:
        f"{LOGS}/apply_samples/{COHORT}/{{name}}.log",
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    params:
        privacy=config["privacy"],
    script:
        "../scripts/run_samples.py"


rule apply_ingest:
    """One omic table of a cohort to score, checked like ingest, in the model's kind."""
    input:
        table=lambda w: config["apply"][w.name]["omics"][w.omic]["path"],
        samples=lambda w: config["apply"][w.name]["samples"],
        normalization=lambda w: f"{config['apply'][w.name]['model']}/normalization.json",
    output:
        h5ad=f"{R}/apply/{{name}}/ingest/{{omic}}.h5ad",
    log:
        f"{LOGS}/apply_ingest/{COHORT}/{{name}}_{{omic}}.log",
    conda:
        "../../envs/ingest.yaml"
    threads: 1
    params:
        omic=lambda w: config["apply"][w.name]["omics"][w.omic],
        sample_id=lambda w: config["apply"][w.name]["sample_id"] or config["sample_id"],
        privacy=config["privacy"],
    script:
        "../scripts/run_apply_ingest.py"


rule apply_score:
    """Project, assign, predict and check drift with frozen parameters only."""
    input:
        unpack(apply_inputs),
    output:
        **{k: f"{R}/apply/{{name}}/{v}" for k, v in APPLY_TABLES.items()},
    log:
        f"{LOGS}/apply_score/{COHORT}/{{name}}.log",
    conda:
        "../../envs/apply.yaml"
    threads: 1
    params:
        outcome=lambda w: config["apply"][w.name]["outcome"],
    script:
        "../scripts/run_apply_score.py"


rule patient_report:
    """One HTML page per scored patient, and an index."""
    input:
        **{k: f"{R}/apply/{{name}}/{v}" for k, v in APPLY_TABLES.items()},
        bundle=lambda w: f"{config['apply'][w.name]['model']}/frozen.json",
    output:
        index=f"{R}/apply/{{name}}/patients/index.html",
    log:
        f"{LOGS}/patient_report/{COHORT}/{{name}}.log",
    conda:
        "../../envs/report.yaml"
    # pages are independent: one forked process per thread (200 ms a page on one core)
    threads: 2
    script:
        "../scripts/run_patient_report.py"
