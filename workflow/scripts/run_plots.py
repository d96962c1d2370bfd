# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    stems = {"variance_explained": sm.output.variance_explained,
             "factors": sm.output.factors_outcome, "umap": sm.output.umap_clusters,
             "heatmap": sm.output.biomarker_heatmap}
    steps.plots(sm.input.h5mu, sm.input.samples, sm.input.ranked, sm.input.factors,
                sm.input.clusters, sm.input.umap,
                {k: v.removesuffix(".png") for k, v in stems.items()},
                outcome=sm.params.outcome, heatmap_top=sm.params.heatmap_top)
