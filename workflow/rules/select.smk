rule stability:
    """Stability selection: L1 model on half-samples, observed and permuted outcome (a shard)."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
    output:
        tsv=f"{R}/biomarkers/stability/shard_{{shard}}.tsv",
    log:
        f"{LOGS}/stability/{COHORT}/shard_{{shard}}.log",
    benchmark:
        f"{BENCH}/stability/{COHORT}/shard_{{shard}}.tsv"
    conda:
        "../../envs/select.yaml"
    threads: 1
    params:
        outcome=config["outcome"],
        outcome_kind=config["outcome_kind"],
        select=config["select"],
    script:
        "../scripts/run_stability.py"


rule rf_importance:
    """Random-forest permutation importance inside repeated cross-validation."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
    output:
        tsv=f"{R}/biomarkers/rf_importance.tsv",
    log:
        f"{LOGS}/rf_importance/{COHORT}.log",
    benchmark:
        f"{BENCH}/rf_importance/{COHORT}.tsv"
    conda:
        "../../envs/select.yaml"
    # one thread: runs beside predict_survival (see there); its folds in two threads gained
    # little (4.8 CPU-s in 4.3 s on the bundled cohort, 24 CPU-s in 34 s at 1,000 patients)
    threads: 1
    params:
        outcome=config["outcome"],
        outcome_kind=config["outcome_kind"],
        select=config["select"],
    script:
        "../scripts/run_rf_importance.py"


rule select:
    """Rank features by weight on the factors, weighed by variance explained and outcome."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
        stability=stability_shards(),
        rf=rf_importance_output(),
    output:
        ranked=report(
            f"{R}/biomarkers/ranked.tsv",
            caption="../report/ranked.rst",
            category="3. Biomarkers",
        ),
        per_omic=[f"{R}/biomarkers/ranked_{o}.tsv" for o in OMICS],
        factors=f"{R}/biomarkers/factor_outcome.tsv",
    log:
        f"{LOGS}/select/{COHORT}.log",
    conda:
        "../../envs/select.yaml"
    threads: 1
    params:
        outcome=config["outcome"],
        outcome_kind=config["outcome_kind"],
        omics=OMICS,
        resamples=config["select"]["resamples"],
    script:
        "../scripts/run_select.py"
