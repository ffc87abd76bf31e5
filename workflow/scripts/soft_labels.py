"""Rule soft_labels: teacher logits for every image, computed once for all student runs."""

from skinkd.data.manifest import read_manifest
from skinkd.teacher.soft_labels import soft_labels
from skinkd.workflow import run_rule


def main() -> None:
    inputs = snakemake.input.keys()
    soft_labels(
        snakemake.input.model,
        snakemake.params.teacher,
        snakemake.output.soft_labels,
        augment=snakemake.params.augment,
        seed=snakemake.params.seed,
        features_path=snakemake.input.features if "features" in inputs else None,
        shard_paths=snakemake.input.shards if "shards" in inputs else [],
        splits=read_manifest(snakemake.input.splits) if "shards" in inputs else None,
    )


run_rule(snakemake, main)
