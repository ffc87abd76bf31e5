rule shift_benchmark:
    input:
        manifest=f"{RESULTS}/data/manifest.csv",
        splits=SPLITS_CSV,
        student=f"{RESULTS}/student/student.keras",
        int8=f"{RESULTS}/export/student_int8.tflite",
        card=f"{RESULTS}/export/model_card.json",
        teacher=teacher_model(),
        weights=weight_resources(),
    output:
        table=report(
            f"{RESULTS}/shifts/{{split}}/shifts.csv",
            caption="../report/shifts_table.rst",
            category="Acquisition shifts",
            subcategory="{split} split",
            labels={"split": "{split}", "table": "ROC AUC per shift"},
        ),
        summary=f"{RESULTS}/shifts/{{split}}/summary.json",
        figure=report(
            f"{RESULTS}/shifts/{{split}}/shifts.png",
            caption="../report/shifts_figure.rst",
            category="Acquisition shifts",
            subcategory="{split} split",
            labels={"split": "{split}", "figure": "ROC AUC against severity"},
        ),
    log:
        f"{RESULTS}/logs/shifts/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/shifts/{{split}}.tsv"
    wildcard_constraints:
        split="val|test",
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        teacher=teacher_labelling_params(),
        teacher_preprocessing=teacher_preprocess_params(),
        frozen=not (TEACHER["trainable_backbones"] or FINE_TUNED),
        seed=config["shifts"]["seed"],
        max_images=config["shifts"]["max_images"],
    script:
        "../scripts/shift_benchmark.py"


rule shifts:
    input:
        expand(
            f"{RESULTS}/shifts/{{split}}/summary.json",
            split=config["shifts"]["splits"],
        ),
