# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.stability_shard(sm.input.h5mu, sm.input.samples, sm.output.tsv,
                          outcome=sm.params.outcome, outcome_kind=sm.params.outcome_kind,
                          shard=int(sm.wildcards.shard),
                          shards=int(sm.params.select["shards"]), select_cfg=sm.params.select)
