rule cluster:
    """Leiden clustering of patients on the MOFA factors; resolution chosen by silhouette."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
    output:
        clusters=f"{R}/clusters.tsv",
        selection=f"{R}/cluster/resolution_selection.tsv",
        umap=f"{R}/cluster/umap.tsv",
        vs_outcome=report(
            f"{R}/clusters_vs_outcome.tsv",
            caption="../report/clusters_vs_outcome.rst",
            category="4. Patient clusters",
        ),
    log:
        f"{LOGS}/cluster/{COHORT}.log",
    benchmark:
        f"{BENCH}/cluster/{COHORT}.tsv"
    conda:
        "../../envs/cluster.yaml"
    threads: 1
    params:
        cluster=config["cluster"],
        outcome=config["outcome"],
        outcome_kind=config["outcome_kind"],
    script:
        "../scripts/run_cluster.py"
