# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.cluster(sm.input.h5mu, sm.input.samples, sm.output.clusters, sm.output.selection,
                  sm.output.umap, sm.output.vs_outcome, cluster_cfg=sm.params.cluster,
                  outcome=sm.params.outcome, outcome_kind=sm.params.outcome_kind)
