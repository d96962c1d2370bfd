# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.mudata({o: sm.input[o] for o in sm.params.omics}, sm.input.samples, sm.output.h5mu,
                 sm.output.overlap)
