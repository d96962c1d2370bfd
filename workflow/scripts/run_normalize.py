# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    steps.normalize(sm.input.h5ad, sm.input.samples, sm.output.h5ad,
                    sm.output.png.removesuffix(".png"), omic_cfg=sm.params.omic,
                    batch=sm.params.batch, seed=sm.params.seed)
