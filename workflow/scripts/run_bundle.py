# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from pathlib import Path

from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.bundle({o: sm.input[f"norm_{o}"] for o in sm.params.omics}, sm.input.h5mu,
                 sm.input.model, sm.input.clusters, sm.input.samples,
                 sm.input.get("predictor"), sm.input.get("metrics"),
                 Path(sm.output.manifest).parent, config=sm.params.config)
