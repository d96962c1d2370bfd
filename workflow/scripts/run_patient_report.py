# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from pathlib import Path

from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    scored = {k: v for k, v in sm.input.items() if k != "bundle"}
    steps.patient_report(Path(sm.input.bundle).parent, scored, Path(sm.output.index).parent,
                         name=sm.wildcards.name, threads=sm.threads)
