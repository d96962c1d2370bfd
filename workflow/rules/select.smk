rule select:
    """Rank features by weight on the factors, weighed by variance explained and outcome."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
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
        omics=OMICS,
    script:
        "../scripts/run_select.py"
