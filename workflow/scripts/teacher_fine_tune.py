"""Rule teacher_fine_tune: the last MobileNetV2 blocks and the trained head, end to end."""

from pathlib import Path

from skinkd.data.manifest import read_manifest
from skinkd.teacher.train import fine_tune_teacher
from skinkd.workflow import rule_checkpoint, run_rule


def main() -> None:
    fine_tune_teacher(
        snakemake.input.shards,
        read_manifest(snakemake.input.splits),
        snakemake.params.teacher,
        augment=snakemake.params.augment,
        seed=snakemake.params.seed,
        head_path=snakemake.input.head,
        out_model=Path(snakemake.output.model),
        out_history=Path(snakemake.output.history),
        checkpoint=rule_checkpoint(snakemake),
    )


run_rule(snakemake, main)
