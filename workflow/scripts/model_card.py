"""Rule model_card: everything a deployment needs to know about the exported student."""

import json
from pathlib import Path

from skinkd.atomic import write_csv
from skinkd.data.manifest import read_manifest
from skinkd.edge.export import write_model_card
from skinkd.runs.paper import model_sizes
from skinkd.workflow import run_rule


def main() -> None:
    evals = {
        e["model"]: e for e in (json.loads(Path(p).read_text()) for p in snakemake.input.evals)
    }
    splits = read_manifest(snakemake.input.splits)
    counts = splits.groupby(["split", "label"]).size().unstack(fill_value=0)
    files = {
        "keras": snakemake.input.model,
        "tflite_fp16": snakemake.input.fp16,
        "tflite_int8": snakemake.input.int8,
    }
    preprocessing = snakemake.params.preprocessing
    calibration = json.loads(Path(snakemake.input.calibration).read_text())
    write_model_card(
        snakemake.output.card,
        image_size=preprocessing["image_size"],
        preprocessing=preprocessing,
        class_names=["benign", "malignant"],
        output_classes=snakemake.params.output_classes,
        malignant_outputs=snakemake.params.malignant,
        threshold=calibration["threshold"],
        threshold_choice={
            "split": "val",
            "target_sensitivity": calibration["target_sensitivity"],
            "val": calibration["val"],
            "test": calibration["test"],
        },
        files=files,
        test_metrics={name: e["metrics"] for name, e in evals.items()},
        training_data={
            "dataset": snakemake.params.dataset,
            # Diagnoses to benign/malignant: skinkd evaluate maps an ISIC set the same way.
            "mapping": snakemake.params.mapping,
            "images": int(len(read_manifest(snakemake.input.manifest))),
            "benign_by_split": {s: int(counts.loc[s, 0]) for s in counts.index},
            "malignant_by_split": {s: int(counts.loc[s, 1]) for s in counts.index},
        },
        config_hash=snakemake.params.config_hash,
    )
    write_csv(model_sizes(files, evals), snakemake.output.sizes)


run_rule(snakemake, main)
