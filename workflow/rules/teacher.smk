rule teacher_features:
    input:
        shards=shard_files(),
        splits=f"{RESULTS}/data/splits.csv",
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
    params:
        teacher=teacher_params(),
        augment=config["augment"],
        image_size=config["image_size"],
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
    params:
        teacher=teacher_params(),
        augment=config["augment"],
        image_size=config["image_size"],
        seed=config["seed"],
    script:
        "../scripts/teacher_train.py"


rule soft_labels:
    input:
        unpack(teacher_inputs),
        model=f"{RESULTS}/teacher/teacher.keras",
    output:
        soft_labels=f"{RESULTS}/teacher/soft_labels.npz",
    log:
        f"{RESULTS}/logs/soft_labels.log",
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=8000,
    params:
        teacher=teacher_params(),
    script:
        "../scripts/soft_labels.py"
