"""Rule leakage: lesions and near-duplicate images crossing the splits, both grouping modes."""

import logging

from skinkd.atomic import write_csv
from skinkd.data.manifest import read_manifest
from skinkd.data.split import leakage_table
from skinkd.workflow import run_rule


def main() -> None:
    manifest = read_manifest(snakemake.input.manifest)
    table = leakage_table(
        manifest,
        fractions=snakemake.params.fractions,
        seed=snakemake.params.seed,
        hash_distance=snakemake.params.hash_distance,
        keep_division=snakemake.params.keep_division,
    )
    write_csv(table, snakemake.output.leakage)
    logging.info("leakage:\n%s", table.T.to_string())


run_rule(snakemake, main)
