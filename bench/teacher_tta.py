"""Measurement: what the teacher's test-time augmentation adds on its own (not a test).

Reads a run's soft labels written with ``teacher.tta: true``, which hold the teacher's
logits of each of the eight flips and right-angle rotations of every image
(``dihedral_logits``, the identity first), and scores P(malignant) on the validation and
test splits three ways: the plain image (the identity view, what the teacher says without
TTA), each view alone, and the average of the eight views' logits (what TTA gives). Bootstrap
95% intervals of the difference TTA - plain come from paired resamples of the images.
Writes bench/results/teacher_tta.json.

    .venv/bin/python bench/teacher_tta.py results/ham10000_pretrained/teacher/soft_labels.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)
from skinkd.data.classes import binary_logits, malignant_probability  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "teacher_tta.json"


def probability(logits: np.ndarray, malignant: np.ndarray) -> np.ndarray:
    return malignant_probability(binary_logits(logits, malignant))


def paired_difference(labels, tta, plain, resamples: int, seed: int) -> list[float]:
    """95% bootstrap interval of AUC(tta) - AUC(plain), the same images in both."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        take = rng.integers(0, len(labels), len(labels))
        if labels[take].min() == labels[take].max():
            continue
        differences.append(roc_auc_score(labels[take], tta[take])
                           - roc_auc_score(labels[take], plain[take]))  # fmt: skip
    return [round(float(q), 4) for q in np.percentile(differences, [2.5, 97.5])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("soft_labels", type=Path)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    with np.load(args.soft_labels, allow_pickle=False) as data:
        if "dihedral_logits" not in data:
            sys.exit(f"{args.soft_labels}: no dihedral_logits; the run did not use teacher.tta")
        split, labels, views = data["split"], data["labels"], data["dihedral_logits"]
        malignant = data["malignant"]
    splits = {}
    for name in ("val", "test"):
        rows = split == name
        truth = labels[rows]
        plain = probability(views[0][rows], malignant)
        tta = probability(views[:, rows].mean(axis=0), malignant)
        splits[name] = {
            "images": int(rows.sum()),
            "roc_auc_plain": round(roc_auc_score(truth, plain), 4),
            "roc_auc_tta": round(roc_auc_score(truth, tta), 4),
            "roc_auc_each_view": [round(roc_auc_score(truth, probability(v[rows], malignant)), 4)
                                  for v in views],  # fmt: skip
            "tta_minus_plain_95ci": paired_difference(truth, tta, plain, args.bootstrap, 0),
        }
        print(name, splits[name], flush=True)
    write_report({"machine": machine(), "soft_labels": str(args.soft_labels), "splits": splits},
                 RESULTS)  # fmt: skip


if __name__ == "__main__":
    main()
