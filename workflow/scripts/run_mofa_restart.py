# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.mofa_restart(sm.input.h5mu, sm.output.model, restart=int(sm.wildcards.restart),
                       mofa_cfg=sm.params.mofa, groups=sm.params.groups)
