"""Probe: does a model read the lesion's size in the frame? (not a test, nothing chosen on it)

Scores a model (by default the pretrained preset's int8 student with its model card) and,
with --teacher, the run's teacher (an image model, at --teacher-size px, on the card's
preprocessing at that side, one view: no TTA) on PH2 and on HAM10000's validation split,
with each raw image magnified about its centre before preprocessing: 1/0.6 and 1/0.8 (the lesion made larger, as a centre
crop would), 1 (as it is), 0.7 and 0.5 (made smaller, the edges mirrored), with
``skinkd.data.photometric.magnify``, the function of ``augment.magnification``. One more
condition fills everything outside the dermoscope's circular field (beyond 0.9 of the
half-axes) with the median colour of the skin ring inside it. A model whose AUC on another
device climbs as its lesions are made smaller has learnt the frame's scale as a cue. PH2 is
for reporting: this says why a model fails there, and the fix is chosen on validation.
Writes bench/results/scale_probe.json.

    .venv/bin/python bench/scale_probe.py [--model results/ham10000_pretrained/export/student_int8.tflite]
        [--teacher results/ham10000_pretrained/teacher/fine_tuned.keras] [--teacher-size 224]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "scale_probe.json"
RUN = PROJECT / "results" / "ham10000_pretrained"
PH2 = PROJECT / ".." / "shared" / "data" / "ph2"  # as config/ham10000.yaml names it
MAGNIFICATIONS = {"crop_0.6": 1 / 0.6, "crop_0.8": 1 / 0.8, "as_is": 1.0,
                  "zoom_out_0.7": 0.7, "zoom_out_0.5": 0.5}  # fmt: skip


def fill_outside_field(image: np.ndarray) -> np.ndarray:
    """Everything beyond 0.9 of the half-axes replaced by the median of the 0.7..0.85 ring."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[:height, :width]
    r = np.hypot((yy + 0.5 - height / 2) / (height / 2), (xx + 0.5 - width / 2) / (width / 2))
    out = image.copy()
    out[r > 0.9] = np.median(image[(r > 0.7) & (r < 0.85)], axis=0).astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(RUN / "export" / "student_int8.tflite"))
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--teacher-size", type=int, default=224)
    args = parser.parse_args()

    import dataclasses

    import pandas as pd

    from skinkd.data.classes import binary_logits, malignant_probability
    from skinkd.data.hashing import file_sha256
    from skinkd.data.images import read_image
    from skinkd.data.manifest import read_manifest
    from skinkd.data.photometric import magnify
    from skinkd.data.preprocess import preprocess_image
    from skinkd.edge.predict import Predictor
    from skinkd.evaluate.metrics import roc_auc

    predictor = Predictor(args.model)
    models = {"model": (predictor.preprocessing, predictor.probabilities)}
    if args.teacher:
        from skinkd.nn.models import keras_logits
        from skinkd.teacher.models import load_teacher

        teacher = load_teacher(args.teacher)
        malignant = predictor.card["malignant_outputs"]
        models["teacher"] = (
            dataclasses.replace(predictor.preprocessing, image_size=args.teacher_size),
            lambda x: malignant_probability(binary_logits(keras_logits(teacher, x, 32), malignant)),
        )
    conditions = {name: (lambda im, f=factor: magnify(im, f)) for name, factor in MAGNIFICATIONS.items()}
    conditions["outside_field_filled"] = fill_outside_field

    ph2 = pd.read_csv(PH2 / "labels.csv")
    manifest = read_manifest(str(RUN / "data" / "manifest.csv"))
    splits = read_manifest(str(RUN / "data" / "splits.csv"))
    val = manifest.merge(splits.loc[splits.split == "val", ["image_id"]], on="image_id")
    sets = {
        "ph2": ([PH2 / f for f in ph2.file], ph2.malignant.to_numpy()),
        "ham10000_validation": ([PROJECT / p for p in val.path], val.label.to_numpy()),
    }
    scores = {}
    for set_name, (paths, labels) in sets.items():
        raw = [read_image(path) for path in paths]
        for model in models:
            scores.setdefault(model, {})[set_name] = {"images": len(raw)}
        for name, transform in conditions.items():
            # Each transform once, shared by the models: only the preprocessing differs.
            shown = [transform(im) for im in raw]
            for model, (preprocessing, probabilities) in models.items():
                images = np.stack([preprocess_image(im, preprocessing) for im in shown])
                scores[model][set_name][name] = round(roc_auc(labels, probabilities(images)), 4)
        print(set_name, {model: scores[model][set_name] for model in models}, flush=True)

    write_report(
        {
            "benchmark": "ROC AUC with each image magnified about its centre before preprocessing",
            "machine": machine(),
            "model": str(Path(args.model).relative_to(PROJECT) if Path(args.model).is_absolute() else args.model),
            "model_sha256": file_sha256(Path(args.model)),
            "teacher": args.teacher,
            "teacher_sha256": file_sha256(Path(args.teacher)) if args.teacher else None,
            "teacher_size": args.teacher_size if args.teacher else None,
            "magnifications": MAGNIFICATIONS,
            "roc_auc": scores,
        },
        RESULTS,
    )


if __name__ == "__main__":
    main()
