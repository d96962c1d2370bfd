rule plots:
    """Variance explained, factors by outcome, UMAP of clusters, top-biomarker heatmap."""
    input:
        h5mu=f"{R}/{COHORT}.h5mu",
        samples=SAMPLES,
        ranked=f"{R}/biomarkers/ranked.tsv",
        factors=f"{R}/biomarkers/factor_outcome.tsv",
        clusters=f"{R}/clusters.tsv",
        umap=f"{R}/cluster/umap.tsv",
    output:
        variance_explained=report(
            f"{R}/plots/variance_explained.png",
            caption="../report/variance_explained.rst",
            category="2. Integration (MOFA+)",
        ),
        factors_outcome=report(
            f"{R}/plots/factors_outcome.png",
            caption="../report/factors_outcome.rst",
            category="2. Integration (MOFA+)",
        ),
        umap_clusters=report(
            f"{R}/plots/umap_clusters.png",
            caption="../report/umap_clusters.rst",
            category="4. Patient clusters",
        ),
        biomarker_heatmap=report(
            f"{R}/plots/biomarker_heatmap.png",
            caption="../report/biomarker_heatmap.rst",
            category="3. Biomarkers",
        ),
        svg=[f"{R}/plots/{p}.svg" for p in PLOTS],
    log:
        f"{LOGS}/plots/{COHORT}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        outcome=config["outcome"],
        heatmap_top=config["select"]["heatmap_top"],
    script:
        "../scripts/run_plots.py"
