"""Rule suite_run: run (or resume) one run of docs/runs.yaml through this workflow, then
archive what docs/results.md reads of it."""

import json
from pathlib import Path

from skinkd.atomic import write_text
from skinkd.errors import DataError
from skinkd.runs.archive import write_archive
from skinkd.runs.results_doc import load_run
from skinkd.runs.suite import run_one
from skinkd.workflow import run_rule


def main() -> None:
    record = run_one(
        snakemake.params.run,
        snakemake.threads,
        snakemake.params.snakefile,
        Path.cwd(),
        snakemake.log[0],
    )
    run = load_run(Path("results"), record["name"])
    if run is None:
        raise DataError(f"run {record['name']!r} finished without evaluations or an ablation table")
    write_archive(run, record, snakemake.output.archive)
    write_text(json.dumps(record, indent=2) + "\n", snakemake.output.record)


run_rule(snakemake, main)
