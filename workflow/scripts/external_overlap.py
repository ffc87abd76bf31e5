"""Rule external_overlap: every external image against this run's images, by SHA-256 and by
perceptual hash, before any metric is read."""

import logging

import pandas as pd

from skinkd.atomic import write_csv
from skinkd.data.manifest import read_manifest
from skinkd.evaluate.external import overlap_counts, overlap_rows, read_reference
from skinkd.workflow import run_rule


def main() -> None:
    images = read_manifest(snakemake.input.images)
    reference = read_reference(snakemake.input.splits)
    rows = overlap_rows(
        list(images["image_id"]),
        list(images["sha256"]),
        list(images["phash"]),
        reference,
        snakemake.params.hash_distance,
    )
    write_csv(pd.DataFrame(rows), snakemake.output.overlap)
    logging.info("overlap: %s", overlap_counts(rows, reference.split_names))


run_rule(snakemake, main)
