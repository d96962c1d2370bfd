rule associate:
    """Factors and clusters vs clinical columns, survival (Cox, KM + log-rank), bias check."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
        clusters=f"{R}/clusters.tsv",
    output:
        table=report(
            f"{R}/associations/associations.tsv",
            caption="../report/associations.rst",
            category="5. Clinical associations",
        ),
        bias=report(
            f"{R}/associations/bias.tsv",
            caption="../report/bias.rst",
            category="5. Clinical associations",
        ),
        heatmap=report(
            f"{R}/plots/associations.png",
            caption="../report/associations_heatmap.rst",
            category="5. Clinical associations",
        ),
        heatmap_svg=f"{R}/plots/associations.svg",
        km=report(
            f"{R}/plots/survival_clusters.png",
            caption="../report/survival_clusters.rst",
            category="5. Clinical associations",
        ),
        km_svg=f"{R}/plots/survival_clusters.svg",
    log:
        f"{LOGS}/associate/{COHORT}.log",
    conda:
        "../../envs/select.yaml"
    threads: 1
    params:
        survival=config["survival"],
        bias=bias_columns(),
        outcome=config["outcome"],
        outcome_kind=config["outcome_kind"],
    script:
        "../scripts/run_associate.py"


rule by_group:
    """Per MOFA+ group (config groups): variance explained, cluster make-up, associations."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
        clusters=f"{R}/clusters.tsv",
        r2_groups=f"{R}/mofa/variance_explained_groups.tsv",
    output:
        associations=report(
            f"{R}/groups/associations.tsv",
            caption="../report/groups_associations.rst",
            category="5. Clinical associations",
        ),
        clusters=f"{R}/groups/clusters.tsv",
        plot=report(
            f"{R}/plots/variance_explained_groups.png",
            caption="../report/variance_explained_groups.rst",
            category="2. Integration (MOFA+)",
        ),
        plot_svg=f"{R}/plots/variance_explained_groups.svg",
    log:
        f"{LOGS}/by_group/{COHORT}.log",
    conda:
        "../../envs/select.yaml"
    threads: 1
    params:
        groups=config["groups"],
        survival=config["survival"],
        bias=bias_columns(),
        outcome=config["outcome"],
        outcome_kind=config["outcome_kind"],
    script:
        "../scripts/run_by_group.py"
