# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    inputs = {f"omic:{o}": p for o, p in zip(sm.params.omics, sm.input.tables, strict=True)}
    steps.manifest({**inputs, "samples": sm.input.samples}, dict(sm.params.config),
                   sm.output.json)
