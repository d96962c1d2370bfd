# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from pathlib import Path

from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    omics = {k[len("omic_"):]: v for k, v in sm.input.items() if k.startswith("omic_")}
    steps.apply_score(Path(sm.input.bundle).parent, omics, sm.input.samples, dict(sm.output),
                      outcome=sm.params.outcome, name=sm.wildcards.name)
