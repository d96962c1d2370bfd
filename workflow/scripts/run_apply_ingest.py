# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from pathlib import Path

from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.apply_ingest(sm.input.table, sm.input.samples, Path(sm.input.normalization).parent,
                       sm.output.h5ad, omic=sm.wildcards.omic, omic_cfg=sm.params.omic,
                       sample_id_cfg=sm.params.sample_id, privacy_cfg=sm.params.privacy)
