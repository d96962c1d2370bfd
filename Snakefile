# Multi-omics biomarker discovery workflow. See README.md; every config key is documented in
# config/schemas/config.schema.json.


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/normalize.smk"
include: "workflow/rules/integrate.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/associate.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/apply.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
