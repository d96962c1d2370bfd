rule integrate:
    """MOFA+ (mofapy2) on all omics: model file, factors, weights, variance explained."""
    input:
        h5mu=f"{R}/normalize/{COHORT}_normalized.h5mu",
    output:
        model=f"{R}/mofa/model.hdf5",
        h5mu=f"{R}/{COHORT}.h5mu",
        r2=f"{R}/mofa/variance_explained.tsv",
        factors=f"{R}/mofa/factors.tsv",
        weights=f"{R}/mofa/weights.tsv",
    log:
        f"{LOGS}/integrate/{COHORT}.log",
    benchmark:
        f"{BENCH}/integrate/{COHORT}.tsv"
    conda:
        "../../envs/integrate.yaml"
    threads: 2
    params:
        mofa=config["integrate"],
    script:
        "../scripts/run_integrate.py"
