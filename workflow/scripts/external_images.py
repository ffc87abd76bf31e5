"""Rule external_images: read an external labelled set, check and hash every image."""

import logging

from skinkd.atomic import write_csv
from skinkd.data.labelled import read_labelled_set
from skinkd.data.manifest import labelled_manifest
from skinkd.workflow import run_rule


def main() -> None:
    params = snakemake.params.external
    # The folder layout is its root; the csv and isic layouts are their labels file.
    folder = params["layout"] == "folder"
    labelled = read_labelled_set(
        params["layout"],
        params["root"] if folder else params["labels"],
        images=None if folder else params["root"] or None,
        mapping=params["mapping"],
        on_bad_image=params["on_bad_image"],
        benign_classes=params["benign_classes"],
        malignant_classes=params["malignant_classes"],
    )
    manifest, rejected = labelled_manifest(
        labelled, params["on_bad_image"], processes=snakemake.threads
    )
    write_csv(rejected, snakemake.output.rejected)
    write_csv(manifest, snakemake.output.images)
    logging.info(
        "%d images (%d malignant), %d rejected",
        len(manifest),
        manifest["label"].sum(),
        len(rejected),
    )


run_rule(snakemake, main)
