# Thin rule script: reads snakemake.*, calls one library function (see omix.steps).
from omix import steps
from omix.errors import rule_boundary

sm = snakemake  # noqa: F821 - injected by Snakemake
with rule_boundary(sm):
    o = sm.output
    steps.predict_survival(sm.input.h5mu, sm.input.samples, o.metrics, o.predictions,
                           o.coefficients, o.km.removesuffix(".png"),
                           survival_cfg=sm.params.survival, predict_cfg=sm.params.predict,
                           mofa_cfg=sm.params.mofa,
                           raw_h5ads=dict(zip(sm.params.omics, sm.input.raw, strict=True)),
                           omics_cfg=sm.params.omics, batch=sm.params.batch,
                           groups=sm.params.groups, threads=sm.threads)
