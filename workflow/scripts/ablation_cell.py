"""Rule ablation_cell: one cell of the ablation grid, one seed."""

import json

import numpy as np

from skinkd.atomic import write_text
from skinkd.data.cache import preprocess_paths
from skinkd.data.manifest import read_manifest
from skinkd.data.preprocess import Preprocessing
from skinkd.evaluate.external import unseen_images
from skinkd.evaluate.shift_benchmark import ShiftSet, split_images
from skinkd.runs.ablation import run_cell
from skinkd.workflow import rule_checkpoint, run_rule


def shift_set() -> ShiftSet | None:
    """The validation images the cell's student is benchmarked on, where asked for."""
    shifts = snakemake.params.shifts
    if shifts is None:
        return None
    images, labels = split_images(read_manifest(snakemake.input.manifest), read_manifest(snakemake.input.splits),
                                  "val", shifts["max_images"], shifts["seed"])  # fmt: skip
    return ShiftSet(images, labels, Preprocessing.from_dict(snakemake.params.preprocessing), shifts["seed"])


def external_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each external set's images the run has not seen, preprocessed as the cell's student's."""
    params = Preprocessing.from_dict(snakemake.params.preprocessing)
    found = {}
    for name, images, overlap in zip(snakemake.params.external, snakemake.input.get("external_images", []),
                                     snakemake.input.get("external_overlap", []), strict=True):  # fmt: skip
        paths, labels = unseen_images(images, overlap)
        found[name] = (preprocess_paths(paths, params), labels)
    return found


def main() -> None:
    result = run_cell(
        snakemake.wildcards.cell,
        snakemake.params.cell,
        int(snakemake.wildcards.seed),
        snakemake.input.shards,
        read_manifest(snakemake.input.splits),
        snakemake.input.soft_labels,
        mapping=snakemake.params.mapping,
        augment=snakemake.params.augment,
        max_train_images=snakemake.params.max_train_images,
        threshold=snakemake.params.threshold,
        checkpoint=rule_checkpoint(snakemake),
        milestones=snakemake.params.milestones,
        shift_set=shift_set(),
        external=external_sets(),
    )
    write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", snakemake.output.result)


run_rule(snakemake, main)
