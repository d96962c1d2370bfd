# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    tables = {k: v for k, v in sm.output.items() if k != "overview"}
    steps.overview(dict(sm.input.items()), sm.output.overview, tables,
                   cohort=sm.params.cohort, outcome=sm.params.outcome,
                   endpoint=sm.params.endpoint)
