"""Rule preprocess_shard: the six stages on one shard of the manifest, cached as uint8."""

import cv2

from skinkd.data.cache import build_shard
from skinkd.data.manifest import read_manifest
from skinkd.data.preprocess import Preprocessing
from skinkd.workflow import run_rule


def main() -> None:
    cv2.setNumThreads(snakemake.threads)
    manifest = read_manifest(snakemake.input.manifest)
    build_shard(
        manifest,
        shard=int(snakemake.wildcards.shard),
        shards=snakemake.params.shards,
        params=Preprocessing.from_dict(snakemake.params.preprocessing),
        out=snakemake.output.shard,
    )


run_rule(snakemake, main)
