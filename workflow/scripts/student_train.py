"""Rule student_train: distil the student from the stored teacher logits."""

from pathlib import Path

from skinkd.data.manifest import read_manifest
from skinkd.student.train import distil_from_cache
from skinkd.workflow import rule_checkpoint, run_rule


def main() -> None:
    distil_from_cache(
        snakemake.input.shards,
        read_manifest(snakemake.input.splits),
        snakemake.input.soft_labels,
        student=snakemake.params.student,
        mapping=snakemake.params.mapping,
        augment=snakemake.params.augment,
        seed=snakemake.params.seed,
        out_model=Path(snakemake.output.model),
        out_history=Path(snakemake.output.history),
        checkpoint=rule_checkpoint(snakemake),
    )


run_rule(snakemake, main)
