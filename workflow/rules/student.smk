rule student_train:
    input:
        shards=shard_files(),
        splits=f"{RESULTS}/data/splits.csv",
        soft_labels=f"{RESULTS}/teacher/soft_labels.npz",
    output:
        model=f"{RESULTS}/student/student.keras",
        history=f"{RESULTS}/student/history.csv",
    log:
        f"{RESULTS}/logs/student_train.log",
    benchmark:
        f"{RESULTS}/benchmarks/student_train.tsv"
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=6000,
        runtime=720,
        cpus_per_task=lambda wildcards, threads: threads,
        slurm_extra=GPU_SLURM_EXTRA,
    params:
        student=config["student"],
        mapping=DATASET["mapping"],
        augment=config["augment"],
        image_size=config["image_size"],
        seed=config["seed"],
    script:
        "../scripts/student_train.py"
