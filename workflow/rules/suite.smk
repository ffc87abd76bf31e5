# The set of runs behind docs/results.md: `snakemake suite --cores 2` runs (or resumes) each
# run of docs/runs.yaml through this workflow, one at a time with every core, then writes
# docs/results.md from their outputs. Absent runs file (another working directory): no suite.
SUITE_FILE = "docs/runs.yaml"
SUITE = (
    {run["name"]: run for run in load_runs(SUITE_FILE)}
    if os.path.exists(SUITE_FILE)
    else {}
)


rule suite_run:
    input:
        base="config.yaml",
        configfiles=lambda wildcards: SUITE[wildcards.run]["configfiles"],
        runs=SUITE_FILE,
    output:
        record="results/suite/{run}.json",
        archive="docs/runs/{run}.json",
    log:
        "results/suite/logs/{run}.log",
    wildcard_constraints:
        run="|".join(re.escape(name) for name in SUITE) or "none",
    conda:
        ENV_SNAKEMAKE
    # Snakemake caps this at --cores: each run gets every core, one run at a time.
    threads: 1024
    resources:
        mem_mb=1000,
        runtime=2880,
        cpus_per_task=config["cluster"]["run_cpus"],
    params:
        run=lambda wildcards: SUITE[wildcards.run],
        snakefile=workflow.main_snakefile,
    script:
        "../scripts/suite_run.py"


rule suite:
    input:
        records=expand("results/suite/{run}.json", run=list(SUITE)),
        runs=SUITE_FILE,
    output:
        doc="docs/results.md",
    log:
        "results/suite/logs/results_doc.log",
    conda:
        ENV_SNAKEMAKE
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    script:
        "../scripts/results_doc.py"
