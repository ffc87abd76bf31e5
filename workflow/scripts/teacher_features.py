"""Rule teacher_features: frozen backbones run once; features of every image cached."""

from skinkd.data.manifest import read_manifest
from skinkd.teacher.features import cache_features
from skinkd.workflow import run_rule


def main() -> None:
    cache_features(
        snakemake.input.shards,
        read_manifest(snakemake.input.splits),
        snakemake.params.teacher,
        augment=snakemake.params.augment,
        seed=snakemake.params.seed,
        out=snakemake.output.features,
    )


run_rule(snakemake, main)
