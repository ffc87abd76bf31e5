rule synthesize:
    output:
        directory(f"{RESULTS}/synthetic"),
    log:
        f"{RESULTS}/logs/synthesize.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize.tsv"
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        synthetic=DATASET["synthetic"],
    script:
        "../scripts/synthesize.py"


rule manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=f"{RESULTS}/data/manifest.csv",
        rejected=f"{RESULTS}/data/rejected.csv",
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    conda:
        ENV_PREPROCESS
    threads: 4
    resources:
        mem_mb=2000,
        runtime=120,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        dataset=manifest_params(),
    script:
        "../scripts/manifest.py"


rule split:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        splits=f"{RESULTS}/data/splits.csv",
    log:
        f"{RESULTS}/logs/split.log",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        split=config["split"],
        keep_division=DATASET["keep_division"],
    script:
        "../scripts/split.py"


rule leakage:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        leakage=report(
            f"{RESULTS}/data/leakage.csv",
            caption="../report/leakage.rst",
            category="Data",
            labels={"table": "leakage"},
        ),
    log:
        f"{RESULTS}/logs/leakage.log",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        fractions=config["split"]["fractions"],
        seed=config["split"]["seed"],
        keep_division=DATASET["keep_division"],
        hash_distance=config["leakage"]["hash_distance"],
    script:
        "../scripts/leakage.py"
