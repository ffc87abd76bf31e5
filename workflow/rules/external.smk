# External validation: each set of config `external` is read and hashed, checked for overlap
# with this run's images, and scored by the student, its int8 export and the teacher. Only
# the set's own jobs run when a set is added: the models are inputs, never outputs here.


rule external_images:
    input:
        labels=external_set_inputs,
    output:
        images=f"{RESULTS}/external/{{set}}/images.csv",
        rejected=f"{RESULTS}/external/{{set}}/rejected.csv",
    log:
        f"{RESULTS}/logs/external/{{set}}/images.log",
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        external=external_params,
    script:
        "../scripts/external_images.py"


rule external_overlap:
    input:
        images=f"{RESULTS}/external/{{set}}/images.csv",
        splits=SPLITS_CSV,
        manifest=f"{RESULTS}/data/manifest.csv",
    output:
        overlap=report(
            f"{RESULTS}/external/{{set}}/overlap.csv",
            caption="../report/external_overlap.rst",
            category="External validation",
            subcategory="{set}",
            labels={"set": "{set}", "table": "overlap"},
        ),
    log:
        f"{RESULTS}/logs/external/{{set}}/overlap.log",
    conda:
        ENV_TRAIN
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        hash_distance=lambda wildcards: EXTERNAL[wildcards.set].get(
            "hash_distance", config["leakage"]["hash_distance"]
        ),
    script:
        "../scripts/external_overlap.py"


rule external_predictions:
    input:
        unpack(external_predictions_inputs),
    output:
        predictions=f"{RESULTS}/external/{{set}}/{{model}}_predictions.csv",
    log:
        f"{RESULTS}/logs/external/{{set}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/external/{{set}}/{{model}}.tsv"
    wildcard_constraints:
        model="|".join(EXTERNAL_MODELS),
    conda:
        ENV_TRAIN
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        teacher=teacher_labelling_params(),
        teacher_preprocessing=teacher_preprocess_params(),
        frozen=not (TEACHER["trainable_backbones"] or FINE_TUNED),
        seed=config["seed"],
    script:
        "../scripts/external_predictions.py"


rule external_metrics:
    input:
        predictions=expand(
            f"{RESULTS}/external/{{{{set}}}}/{{model}}_predictions.csv",
            model=EXTERNAL_MODELS,
        ),
        overlap=f"{RESULTS}/external/{{set}}/overlap.csv",
        rejected=f"{RESULTS}/external/{{set}}/rejected.csv",
        card=f"{RESULTS}/export/model_card.json",
        soft_labels=f"{RESULTS}/teacher/soft_labels.npz",
    output:
        metrics=f"{RESULTS}/external/{{set}}/metrics.json",
        table=report(
            f"{RESULTS}/external/{{set}}/metrics.csv",
            caption="../report/external_metrics.rst",
            category="External validation",
            subcategory="{set}",
            labels={"set": "{set}", "table": "metrics"},
        ),
        roc=report(
            f"{RESULTS}/external/{{set}}/roc.png",
            caption="../report/external_roc.rst",
            category="External validation",
            subcategory="{set}",
            labels={"set": "{set}", "figure": "ROC"},
        ),
        reliability=report(
            f"{RESULTS}/external/{{set}}/reliability.png",
            caption="../report/external_reliability.rst",
            category="External validation",
            subcategory="{set}",
            labels={"set": "{set}", "figure": "reliability"},
        ),
    log:
        f"{RESULTS}/logs/external/{{set}}/metrics.log",
    conda:
        ENV_TRAIN
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        cpus_per_task=lambda wildcards, threads: threads,
    params:
        models=EXTERNAL_MODELS,
        evaluate=config["evaluate"],
    script:
        "../scripts/external_metrics.py"
