# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.samples(sm.input.samples, sm.output.tsv,
                  sm.output.mapping[0] if len(sm.output.mapping) else None,
                  privacy_cfg=sm.params.privacy)
