# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.integrate(sm.input.h5mu, list(sm.input.restarts), sm.output.model, sm.output.h5mu,
                    sm.output.r2, sm.output.r2_groups, sm.output.factors, sm.output.weights,
                    sm.output.restarts, sm.output.stability)
