"""Rule manifest: load the dataset, check and hash every image, write manifest and rejects."""

import logging

from skinkd.atomic import write_csv
from skinkd.data.datasets import load_source
from skinkd.data.manifest import build_manifest
from skinkd.workflow import run_rule


def main() -> None:
    params = snakemake.params.dataset
    source = load_source(params)
    manifest, rejected = build_manifest(
        source, on_bad_image=params["on_bad_image"], processes=snakemake.threads
    )
    write_csv(rejected, snakemake.output.rejected)
    write_csv(manifest, snakemake.output.manifest)
    logging.info(
        "%d images (%d malignant), %d groups, %d rejected",
        len(manifest),
        manifest["label"].sum(),
        manifest["group"].nunique(),
        len(rejected),
    )


run_rule(snakemake, main)
