"""Rule suite_run: run (or resume) one run of docs/runs.yaml through this workflow."""

import json
from pathlib import Path

from skinkd.atomic import write_text
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
    write_text(json.dumps(record, indent=2) + "\n", snakemake.output.record)


run_rule(snakemake, main)
