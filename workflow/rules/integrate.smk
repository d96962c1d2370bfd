rule mofa_restart:
    """One MOFA+ fit from seed integrate.seed + restart; restarts are separate jobs."""
    input:
        h5mu=f"{R}/normalize/{COHORT}_normalized.h5mu",
    output:
        model=f"{R}/mofa/restarts/restart_{{restart}}.hdf5",
    log:
        f"{LOGS}/mofa_restart/{COHORT}/restart_{{restart}}.log",
    benchmark:
        f"{BENCH}/mofa_restart/{COHORT}_{{restart}}.tsv"
    conda:
        "../../envs/integrate.yaml"
    # Independent fits run faster two at a time on one thread each than one at a time on two
    # (../shared/notes/mofapy2-facts.md): one thread per job when there are several restarts.
    threads: 2 if config["integrate"]["restarts"] == 1 else 1
    params:
        mofa=config["integrate"],
        groups=config["groups"],
    script:
        "../scripts/run_mofa_restart.py"


rule integrate:
    """Best restart by ELBO: model, factors, weights, variance explained (also per group)."""
    input:
        h5mu=f"{R}/normalize/{COHORT}_normalized.h5mu",
        restarts=mofa_restarts(),
    output:
        model=f"{R}/mofa/model.hdf5",
        h5mu=f"{R}/{COHORT}.h5mu",
        r2=f"{R}/mofa/variance_explained.tsv",
        r2_groups=f"{R}/mofa/variance_explained_groups.tsv",
        factors=f"{R}/mofa/factors.tsv",
        weights=f"{R}/mofa/weights.tsv",
        restarts=f"{R}/mofa/restarts.tsv",
        stability=f"{R}/mofa/factor_stability.tsv",
    log:
        f"{LOGS}/integrate/{COHORT}.log",
    benchmark:
        f"{BENCH}/integrate/{COHORT}.tsv"
    conda:
        "../../envs/integrate.yaml"
    threads: 1
    params:
        mofa=config["integrate"],
    script:
        "../scripts/run_integrate.py"
