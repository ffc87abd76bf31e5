rule ablation_preprocess_shard:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        shard=f"{RESULTS}/ablation/preprocessed/{{variant}}/shard_{{shard}}.npz",
    log:
        f"{RESULTS}/logs/ablation/preprocess_{{variant}}_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation/preprocess_{{variant}}_{{shard}}.tsv"
    wildcard_constraints:
        variant="|".join(ABLATION_VARIANTS) or "none",
        shard=r"\d+",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        preprocessing=lambda wildcards: variant_preprocess_params(wildcards.variant),
        shards=len(SHARDS),
    script:
        "../scripts/preprocess_shard.py"


rule ablation_cell:
    input:
        unpack(ablation_shift_inputs),
        unpack(ablation_external_inputs),
        shards=ablation_cell_shards,
        splits=SPLITS_CSV,
        soft_labels=f"{RESULTS}/teacher/soft_labels.npz",
    output:
        result=f"{RESULTS}/ablation/cells/{{cell}}/seed_{{seed}}.json",
    log:
        f"{RESULTS}/logs/ablation/{{cell}}_seed_{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablation/{{cell}}_seed_{{seed}}.tsv"
    wildcard_constraints:
        cell="|".join(re.escape(c) for c in ABLATION_CELLS),
        seed=r"\d+",
    conda:
        ENV_TRAIN
    threads: 1
    resources:
        mem_mb=6000,
        runtime=720,
        cpus_per_task=lambda wildcards, threads: threads,
        slurm_extra=GPU_SLURM_EXTRA,
    params:
        cell=lambda wildcards: ABLATION_CELLS[wildcards.cell],
        mapping=DATASET["mapping"],
        augment=config["augment"],
        max_train_images=config["ablation"]["max_train_images"],
        threshold=config["evaluate"]["threshold"],
        milestones=config["ablation"]["milestones"],
        shifts=config["shifts"] if config["ablation"]["shifts"] else None,
        external=list(EXTERNAL) if config["ablation"]["external"] else [],
        preprocessing=ablation_cell_preprocessing,
    script:
        "../scripts/ablation_cell.py"


rule ablation_table:
    input:
        results=[
            f"{RESULTS}/ablation/cells/{cell}/seed_{seed}.json"
            for cell, seeds in ABLATION_SEEDS.items()
            for seed in seeds
        ],
    output:
        table=report(
            f"{RESULTS}/ablation/ablation.csv",
            caption="../report/ablation.rst",
            category="Ablation",
            labels={"table": "ablation"},
        ),
        figure=report(
            f"{RESULTS}/figures/ablation.png",
            caption="../report/ablation_figure.rst",
            category="Ablation",
            labels={"figure": "ablation"},
        ),
        epochs=report(
            f"{RESULTS}/ablation/epochs.csv",
            caption="../report/ablation_epochs.rst",
            category="Ablation",
            labels={"table": "ROC AUC against epochs"},
        ),
        epochs_figure=report(
            f"{RESULTS}/figures/ablation_epochs.png",
            caption="../report/ablation_epochs_figure.rst",
            category="Ablation",
            labels={"figure": "ROC AUC against epochs"},
        ),
    log:
        f"{RESULTS}/logs/ablation_table.log",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    script:
        "../scripts/ablation_table.py"


rule ablation:
    input:
        f"{RESULTS}/ablation/ablation.csv",
        f"{RESULTS}/figures/ablation.png",
        f"{RESULTS}/ablation/epochs.csv",
        f"{RESULTS}/figures/ablation_epochs.png",
