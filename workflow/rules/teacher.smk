rule mobilenetv2_weights:
    input:
        source=pretrained_source_input,
    output:
        weights=WEIGHT_RESOURCES["mobilenetv2"],
    log:
        "resources/logs/mobilenetv2_weights.log",
    conda:
        ENV_TRAIN
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        source=config["pretrained"]["mobilenetv2"],
    script:
        "../scripts/mobilenetv2_weights.py"


rule teacher_preprocess_shard:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        shard=f"{RESULTS}/teacher/preprocessed/shard_{{shard}}.npz",
    log:
        f"{RESULTS}/logs/teacher/preprocess_shard_{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/teacher/preprocess_shard_{{shard}}.tsv"
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
        preprocessing=teacher_preprocess_params(),
        shards=len(SHARDS),
    script:
        "../scripts/preprocess_shard.py"


rule teacher_features:
    input:
        shards=teacher_shard_files(),
        splits=f"{RESULTS}/data/splits.csv",
        weights=weight_resources(),
    output:
        features=f"{RESULTS}/teacher/features.npz",
    log:
        f"{RESULTS}/logs/teacher_features.log",
    benchmark:
        f"{RESULTS}/benchmarks/teacher_features.tsv"
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=8000,
        runtime=480,
        cpus_per_task=lambda wildcards, threads: threads,
        slurm_extra=GPU_SLURM_EXTRA,
    params:
        teacher=teacher_feature_params(),
        augment=config["augment"],
        seed=config["seed"],
    script:
        "../scripts/teacher_features.py"


rule teacher_train:
    input:
        unpack(teacher_inputs),
    output:
        model=f"{RESULTS}/teacher/teacher.keras",
        history=f"{RESULTS}/teacher/history.csv",
    log:
        f"{RESULTS}/logs/teacher_train.log",
    benchmark:
        f"{RESULTS}/benchmarks/teacher_train.tsv"
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        cpus_per_task=lambda wildcards, threads: threads,
        slurm_extra=GPU_SLURM_EXTRA,
    params:
        teacher=teacher_params(),
        augment=config["augment"],
        seed=config["seed"],
    script:
        "../scripts/teacher_train.py"


rule teacher_fine_tune:
    input:
        head=f"{RESULTS}/teacher/teacher.keras",
        shards=teacher_shard_files(),
        splits=f"{RESULTS}/data/splits.csv",
        weights=weight_resources(),
    output:
        model=f"{RESULTS}/teacher/fine_tuned.keras",
        history=f"{RESULTS}/teacher/fine_tune_history.csv",
    log:
        f"{RESULTS}/logs/teacher_fine_tune.log",
    benchmark:
        f"{RESULTS}/benchmarks/teacher_fine_tune.tsv"
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=12000,
        runtime=720,
        cpus_per_task=lambda wildcards, threads: threads,
        slurm_extra=GPU_SLURM_EXTRA,
    params:
        teacher=teacher_params(),
        augment=config["augment"],
        seed=config["seed"],
    script:
        "../scripts/teacher_fine_tune.py"


rule soft_labels:
    input:
        unpack(soft_labels_inputs),
    output:
        soft_labels=f"{RESULTS}/teacher/soft_labels.npz",
    log:
        f"{RESULTS}/logs/soft_labels.log",
    benchmark:
        f"{RESULTS}/benchmarks/soft_labels.tsv"
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        cpus_per_task=lambda wildcards, threads: threads,
        slurm_extra=GPU_SLURM_EXTRA,
    params:
        teacher=teacher_labelling_params(),
        augment=config["augment"],
        seed=config["seed"],
    script:
        "../scripts/soft_labels.py"
