rule overview:
    """The report's first page (headline results) and its key tables rendered as HTML."""
    input:
        unpack(overview_inputs),
    output:
        overview=report(
            f"{R}/report/overview.html",
            caption="../report/overview.rst",
            category="0. Headline results",
        ),
        biomarkers=report(
            f"{R}/report/tables/biomarkers.html",
            caption="../report/table.rst",
            category="3. Biomarkers",
        ),
        prediction=report(
            f"{R}/report/tables/prediction.html",
            caption="../report/table.rst",
            category="6. Prediction",
        ),
        survival=report(
            f"{R}/report/tables/survival.html",
            caption="../report/table.rst",
            category="6. Prediction",
        ),
        associations=report(
            f"{R}/report/tables/associations.html",
            caption="../report/table.rst",
            category="5. Clinical associations",
        ),
        clustering=report(
            f"{R}/report/tables/clustering.html",
            caption="../report/table.rst",
            category="4. Patient clusters",
        ),
    log:
        f"{LOGS}/overview/{COHORT}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    params:
        cohort=COHORT,
        outcome=config["outcome"],
        endpoint=ENDPOINT,
    script:
        "../scripts/run_overview.py"


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
