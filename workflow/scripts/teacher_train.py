"""Rule teacher_train: the fusion head on cached features, or the whole teacher end to end."""

from pathlib import Path

from skinkd.data.manifest import read_manifest
from skinkd.teacher.train import train_teacher_end_to_end, train_teacher_head
from skinkd.workflow import rule_checkpoint, run_rule


def main() -> None:
    teacher = snakemake.params.teacher
    out_model, out_history = Path(snakemake.output.model), Path(snakemake.output.history)
    checkpoint = rule_checkpoint(snakemake)
    if teacher["trainable_backbones"]:
        train_teacher_end_to_end(
            snakemake.input.shards,
            read_manifest(snakemake.input.splits),
            teacher,
            augment=snakemake.params.augment,
            seed=snakemake.params.seed,
            out_model=out_model,
            out_history=out_history,
            checkpoint=checkpoint,
        )
    else:
        train_teacher_head(
            snakemake.input.features,
            read_manifest(snakemake.input.splits),
            teacher,
            seed=snakemake.params.seed,
            out_model=out_model,
            out_history=out_history,
            checkpoint=checkpoint,
        )


run_rule(snakemake, main)
