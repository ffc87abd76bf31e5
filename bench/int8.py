"""Benchmark: how much ROC AUC a seven-class student loses in int8 against its Keras model,
exported three ways (not a test):

- ``keras_selu_collapse_inside``: as exported before, Keras' SELU activations and the
  collapse of the seven logits to benign/malignant inside the quantised graph;
- ``keras_selu_class_logits``: the seven logits exported, the collapse in float after;
- ``bounded_selu_class_logits``: as exported now, also with ``bounded_selu``, whose
  exponential sees min(x, 0) only.

All three carry the same trained weights and compute the same function in float. The
student is the paper's CNN with seven outputs at --image-size px, trained on HAM10000's hard
diagnosis labels (alpha 1: no teacher needed) for --epochs epochs, seed 0, with the config's
augmentation; the data are the workflow's own split and cache of the HAM10000 preset with
the pretrained preset's plain images (clinical mapping), built by Snakemake first. Each
export is scored on the test split: ROC AUC of P(malignant), its difference from Keras, the
largest probability difference, and the TFLite ops of each file.
Writes bench/results/int8.json.

    .venv/bin/python bench/int8.py [--epochs 30] [--image-size 96]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "int8.json"
PRESETS = ("config/ham10000.yaml", "config/ham10000_pretrained.yaml")
AUGMENT = {"rotation": 20, "height_shift": 0.1, "width_shift": 0.1, "shear": 0.1,
           "horizontal_flip": True}  # fmt: skip


def build_cache(name: str, image_size: int, workdir: Path) -> Path:
    """The HAM10000 split and preprocessed shards at ``image_size``, made by the workflow."""
    override = workdir / "int8_bench.yaml"
    override.write_text(yaml.safe_dump({"name": name, "image_size": image_size}))
    shards = [f"results/{name}/preprocessed/shard_{i}.npz" for i in range(8)]
    subprocess.run(
        [sys.executable, "-m", "snakemake", f"results/{name}/data/splits.csv", *shards, "--cores",
         "2", "--configfile", *PRESETS, str(override)],
        cwd=PROJECT, check=True, capture_output=True,
    )  # fmt: skip
    return PROJECT / "results" / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--representative", type=int, default=200)
    args = parser.parse_args()

    import keras

    import skinkd.edge.export as export
    from skinkd.data.cache import load_splits
    from skinkd.data.classes import (
        class_labels,
        malignant_mask,
        malignant_probability,
    )
    from skinkd.data.manifest import read_manifest
    from skinkd.data.preprocess import rescale
    from skinkd.evaluate.metrics import roc_auc
    from skinkd.nn.models import bounded_selu
    from skinkd.student.train import train_student

    with tempfile.TemporaryDirectory(prefix="skinkd-int8-") as tmp:
        tmp = Path(tmp)
        run = build_cache(f"int8_bench_{args.image_size}", args.image_size, tmp)
        splits = read_manifest(run / "data/splits.csv")
        data = load_splits(sorted((run / "preprocessed").glob("shard_*.npz")), splits,
                           ("train", "val", "test"))  # fmt: skip
        (train_x, _, train_ids), (val_x, _, val_ids), (test_x, test_y, _) = (
            data["train"], data["val"], data["test"]
        )  # fmt: skip
        malignant = malignant_mask("dx", "clinical")
        model = train_student(
            train_x, class_labels(splits, train_ids, "dx"), np.zeros((len(train_x), 7), np.float32),
            val_x, class_labels(splits, val_ids, "dx"), np.zeros((len(val_x), 7), np.float32),
            out_model=tmp / "student.keras", out_history=tmp / "history.csv", optimizer="adam",
            learning_rate=1e-3, batch_size=32, epochs=args.epochs, alpha=1.0,
            feature_conversion="gmp", malignant=malignant, augment=AUGMENT, seed=0,
        )  # fmt: skip
        keras_prob = malignant_probability(np.asarray(model.predict(rescale(test_x), verbose=0)))
        rng = np.random.default_rng(0)
        representative = train_x[rng.choice(len(train_x), args.representative, replace=False)]

        exports = {}
        cut = export.class_logits_network
        # The same weights in the network as built before bounded_selu: Keras' own SELU.
        def with_keras_selu(layer):
            config = layer.get_config()
            if getattr(layer, "activation", None) is bounded_selu:
                config["activation"] = "selu"
            return layer.__class__.from_config(config)

        keras_selu = keras.models.clone_model(model, clone_function=with_keras_selu)
        keras_selu.set_weights(model.get_weights())
        forms = {
            "keras_selu_collapse_inside": (keras_selu, lambda m: m),
            "keras_selu_class_logits": (keras_selu, cut),
            "bounded_selu_class_logits": (model, cut),
        }
        for form, (network, cutting) in forms.items():
            export.class_logits_network = cutting
            paths = tmp / f"{form}_fp16.tflite", tmp / f"{form}_int8.tflite"
            export.export_tflite(network, *paths, representative)
            for precision, path in zip(("fp16", "int8"), paths, strict=True):
                collapsed = form.endswith("collapse_inside")
                classifier = export.TFLiteClassifier(path, malignant=None if collapsed else malignant)
                prob = malignant_probability(classifier.predict_logits(test_x))
                auc = roc_auc(test_y, prob)
                exports[f"{form}_{precision}"] = {
                    "roc_auc": round(auc, 4),
                    "minus_keras": round(auc - roc_auc(test_y, keras_prob), 4),
                    "largest_probability_difference": round(float(np.abs(prob - keras_prob).max()), 4),
                    "ops": sorted({op["op_name"] for op in classifier._interpreter._get_ops_details()}),
                }
        export.class_logits_network = cut

    write_report(
        {
            "benchmark": "int8 against Keras for a seven-class student, collapse inside or outside",
            "machine": machine(keras_backend=keras.backend.backend()),
            "image_size": args.image_size,
            "epochs": args.epochs,
            "test_images": int(len(test_y)),
            "representative_images": args.representative,
            "keras_roc_auc": round(roc_auc(test_y, keras_prob), 4),
            "exports": exports,
        },
        RESULTS,
    )


if __name__ == "__main__":
    main()
