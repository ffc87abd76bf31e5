"""Rule split: the seeded, stratified train/val/test split of the manifest."""

import logging

from skinkd.atomic import write_csv
from skinkd.data.manifest import read_manifest
from skinkd.data.split import make_splits
from skinkd.workflow import run_rule


def main() -> None:
    manifest = read_manifest(snakemake.input.manifest)
    split = snakemake.params.split
    splits = make_splits(
        manifest,
        group_by=split["group_by"],
        fractions=split["fractions"],
        seed=split["seed"],
        keep_division=snakemake.params.keep_division,
    )
    write_csv(splits, snakemake.output.splits)
    summary = splits.groupby("split")["label"].agg(["size", "mean"])
    logging.info("split by %s:\n%s", split["group_by"], summary.to_string())


run_rule(snakemake, main)
