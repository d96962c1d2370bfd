# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.select(sm.input.h5mu, sm.input.samples, sm.output.ranked,
                 dict(zip(sm.params.omics, sm.output.per_omic, strict=True)), sm.output.factors,
                 outcome=sm.params.outcome, outcome_kind=sm.params.outcome_kind,
                 stability_shards=list(sm.input.stability),
                 resamples=int(sm.params.resamples),
                 rf_tsv=sm.input.rf[0] if len(sm.input.rf) else None)
