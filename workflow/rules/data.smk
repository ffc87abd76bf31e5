rule synthesize:
    output:
        directory(f"{RESULTS}/synthetic"),
    params:
        synthetic=DATASET["synthetic"],
    log:
        f"{RESULTS}/logs/synthesize.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthesize.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV_PREPROCESS
    script:
        "../scripts/synthesize.py"


rule manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=f"{RESULTS}/data/manifest.csv",
        rejected=f"{RESULTS}/data/rejected.csv",
    params:
        dataset=manifest_params(),
    log:
        f"{RESULTS}/logs/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest.tsv"
    threads: 4
    resources:
        mem_mb=2000,
    conda:
        ENV_PREPROCESS
    script:
        "../scripts/manifest.py"


rule split:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        splits=f"{RESULTS}/data/splits.csv",
    params:
        split=config["split"],
        keep_division=DATASET["keep_division"],
    log:
        f"{RESULTS}/logs/split.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV_PREPROCESS
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
    params:
        fractions=config["split"]["fractions"],
        seed=config["split"]["seed"],
        keep_division=DATASET["keep_division"],
        hash_distance=config["leakage"]["hash_distance"],
    log:
        f"{RESULTS}/logs/leakage.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV_PREPROCESS
    script:
        "../scripts/leakage.py"
