"""Rule student_train: distil the student from the stored teacher logits."""

from pathlib import Path

from skinkd.cache import load_split
from skinkd.manifest import read_manifest
from skinkd.teacher import read_soft_labels
from skinkd.train import train_student
from skinkd.workflow import run_rule


def main() -> None:
    splits = read_manifest(snakemake.input.splits)
    train_images, train_labels, train_ids = load_split(snakemake.input.shards, splits, "train")
    val_images, val_labels, val_ids = load_split(snakemake.input.shards, splits, "val")
    soft = snakemake.input.soft_labels
    train_student(
        train_images,
        train_labels,
        read_soft_labels(soft, "train", train_ids),
        val_images,
        val_labels,
        read_soft_labels(soft, "val", val_ids),
        out_model=Path(snakemake.output.model),
        out_history=Path(snakemake.output.history),
        augment=snakemake.params.augment,
        seed=snakemake.params.seed,
        **snakemake.params.student,
    )


run_rule(snakemake, main)
