from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


localrules:
    all,
    ablation,
    shifts,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/student.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/shifts.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/suite.smk"


rule all:
    default_target: True
    input:
        all_targets(),
