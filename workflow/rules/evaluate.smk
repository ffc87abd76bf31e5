rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        evaluation=f"{RESULTS}/eval/{{model}}.json",
        predictions=f"{RESULTS}/eval/{{model}}_predictions.csv",
    log:
        f"{RESULTS}/logs/evaluate/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{model}}.tsv"
    wildcard_constraints:
        model="|".join(EVAL_MODELS),
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        evaluate=config["evaluate"],
        malignant=STUDENT_MALIGNANT,
    script:
        "../scripts/evaluate.py"


rule metrics_table:
    input:
        evals=expand(f"{RESULTS}/eval/{{model}}.json", model=EVAL_MODELS),
        predictions=expand(
            f"{RESULTS}/eval/{{model}}_predictions.csv", model=EVAL_MODELS
        ),
    output:
        metrics=report(
            f"{RESULTS}/eval/metrics.csv",
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="Test split",
            labels={"table": "metrics"},
        ),
        paper=report(
            f"{RESULTS}/eval/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Evaluation",
            subcategory="Test split",
            labels={"table": "ours vs paper"},
        ),
        confusion=report(
            f"{RESULTS}/figures/confusion_matrices.png",
            caption="../report/confusion.rst",
            category="Evaluation",
            subcategory="Test split",
            labels={"figure": "confusion matrices"},
        ),
        roc=report(
            f"{RESULTS}/figures/roc.png",
            caption="../report/roc.rst",
            category="Evaluation",
            subcategory="Test split",
            labels={"figure": "ROC"},
        ),
    log:
        f"{RESULTS}/logs/metrics_table.log",
    conda:
        ENV_TRAIN
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        dataset=config["dataset"]["kind"],
    script:
        "../scripts/metrics_table.py"


rule headline:
    input:
        evals=expand(f"{RESULTS}/eval/{{model}}.json", model=HEADLINE_MODELS),
        externals=expand(f"{RESULTS}/external/{{set}}/metrics.json", set=list(EXTERNAL)),
    output:
        headline=report(
            f"{RESULTS}/eval/headline.csv",
            caption="../report/headline.rst",
            category="Evaluation",
            subcategory="Headline",
            labels={"table": "ROC AUC, test split and external sets"},
        ),
    log:
        f"{RESULTS}/logs/headline.log",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        models=HEADLINE_MODELS,
        sets=list(EXTERNAL),
    script:
        "../scripts/headline.py"


rule training_curves:
    input:
        teacher=f"{RESULTS}/teacher/history.csv",
        student=f"{RESULTS}/student/history.csv",
    output:
        teacher=report(
            f"{RESULTS}/figures/teacher_training.png",
            caption="../report/teacher_training.rst",
            category="Teacher",
            labels={"figure": "training curves"},
        ),
        student=report(
            f"{RESULTS}/figures/student_training.png",
            caption="../report/student_training.rst",
            category="Student",
            labels={"figure": "training curves"},
        ),
    log:
        f"{RESULTS}/logs/training_curves.log",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    script:
        "../scripts/training_curves.py"


rule fine_tune_curves:
    input:
        history=f"{RESULTS}/teacher/fine_tune_history.csv",
    output:
        figure=report(
            f"{RESULTS}/figures/teacher_fine_tune_training.png",
            caption="../report/teacher_fine_tune_training.rst",
            category="Teacher",
            labels={"figure": "fine-tuning curves"},
        ),
    log:
        f"{RESULTS}/logs/fine_tune_curves.log",
    conda:
        ENV_PREPROCESS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    script:
        "../scripts/fine_tune_curves.py"


rule calibration:
    input:
        model=f"{RESULTS}/student/student.keras",
        shards=shard_files(),
        splits=SPLITS_CSV,
        test_predictions=f"{RESULTS}/eval/student_predictions.csv",
    output:
        calibration=f"{RESULTS}/eval/calibration.json",
        figure=report(
            f"{RESULTS}/figures/reliability.png",
            caption="../report/reliability.rst",
            category="Evaluation",
            subcategory="Test split",
            labels={"figure": "reliability"},
        ),
    log:
        f"{RESULTS}/logs/calibration.log",
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        target_sensitivity=config["evaluate"]["target_sensitivity"],
    script:
        "../scripts/calibration.py"


rule explanations:
    input:
        student=f"{RESULTS}/student/student.keras",
        teacher=teacher_model(),
        shards=shard_files(),
        teacher_shards=teacher_shard_files(),
        splits=SPLITS_CSV,
    output:
        figure=report(
            f"{RESULTS}/figures/gradcam.png",
            caption="../report/gradcam.rst",
            category="Explanations",
            labels={"figure": "Grad-CAM"},
        ),
    log:
        f"{RESULTS}/logs/explanations.log",
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        per_class=config["explain"]["per_class"],
        seed=config["seed"],
        teacher_malignant=teacher_params()["malignant"],
    script:
        "../scripts/explanations.py"
