rule export_tflite:
    input:
        model=f"{RESULTS}/student/student.keras",
        shards=shard_files(),
        splits=f"{RESULTS}/data/splits.csv",
    output:
        fp16=f"{RESULTS}/export/student_fp16.tflite",
        int8=f"{RESULTS}/export/student_int8.tflite",
    log:
        f"{RESULTS}/logs/export_tflite.log",
    benchmark:
        f"{RESULTS}/benchmarks/export_tflite.tsv"
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        representative_images=config["export"]["representative_images"],
        seed=config["seed"],
    script:
        "../scripts/export_tflite.py"


rule model_card:
    input:
        model=f"{RESULTS}/student/student.keras",
        fp16=f"{RESULTS}/export/student_fp16.tflite",
        int8=f"{RESULTS}/export/student_int8.tflite",
        evals=expand(f"{RESULTS}/eval/{{model}}.json", model=STUDENT_MODELS),
        calibration=f"{RESULTS}/eval/calibration.json",
        manifest=f"{RESULTS}/data/manifest.csv",
        splits=f"{RESULTS}/data/splits.csv",
    output:
        card=f"{RESULTS}/export/model_card.json",
        sizes=report(
            f"{RESULTS}/export/model_sizes.csv",
            caption="../report/model_sizes.rst",
            category="Quantisation",
            labels={"table": "model sizes"},
        ),
    log:
        f"{RESULTS}/logs/model_card.log",
    conda:
        ENV_TRAIN
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        preprocessing=preprocess_params(),
        config_hash=config_hash(MODEL_CONFIG),
        dataset=config["dataset"]["kind"],
        mapping=DATASET["mapping"] if DATASET["kind"] == "ham10000" else None,
        output_classes=STUDENT_OUTPUTS,
        malignant=STUDENT_MALIGNANT,
    script:
        "../scripts/model_card.py"
