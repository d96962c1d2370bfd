# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.by_group(sm.input.h5mu, sm.input.samples, sm.input.clusters, sm.input.r2_groups,
                   sm.output.associations, sm.output.clusters,
                   sm.output.plot.removesuffix(".png"), groups=sm.params.groups,
                   survival_cfg=sm.params.survival, bias_columns=list(sm.params.bias),
                   outcome=sm.params.outcome, outcome_kind=sm.params.outcome_kind)
