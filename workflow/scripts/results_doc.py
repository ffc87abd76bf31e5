"""Rule suite: docs/results.md from the outputs of every run in docs/runs.yaml."""

from skinkd.runs.results_doc import main
from skinkd.workflow import run_rule


def main_rule() -> None:
    main(["--runs", snakemake.input.runs, "--out", snakemake.output.doc])


run_rule(snakemake, main_rule)
