rule preprocess_shard:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        shard=f"{RESULTS}/preprocessed/shard_{{shard}}.npz",
    log:
        f"{RESULTS}/logs/preprocess/shard_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/shard_{{shard}}.tsv"
    wildcard_constraints:
        shard=r"\d+",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        preprocessing=preprocess_params(),
        shards=len(SHARDS),
    script:
        "../scripts/preprocess_shard.py"


rule preprocess_figure:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        figure=report(
            f"{RESULTS}/figures/preprocess_stages.png",
            caption="../report/preprocess_stages.rst",
            category="Preprocessing",
            labels={"figure": "stages"},
        ),
    log:
        f"{RESULTS}/logs/preprocess_figure.log",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        preprocessing=preprocess_params(),
    script:
        "../scripts/preprocess_figure.py"
