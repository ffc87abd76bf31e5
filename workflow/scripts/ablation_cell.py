"""Rule ablation_cell: one cell of the ablation grid, one seed."""

import json

from skinkd.atomic import write_text
from skinkd.data.manifest import read_manifest
from skinkd.runs.ablation import run_cell
from skinkd.workflow import rule_checkpoint, run_rule


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
    )
    write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", snakemake.output.result)


run_rule(snakemake, main)
