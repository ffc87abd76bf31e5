"""Rule ablation_table: mean and spread over seeds per cell, beside the paper's Tables 3-4,
and each cell's ROC AUC against its training epochs."""

import json
from pathlib import Path

from skinkd.atomic import write_csv
from skinkd.evaluate.figures import ablation_figure, milestones_figure
from skinkd.runs.ablation import summarise, summarise_milestones
from skinkd.runs.paper import with_paper_ablation
from skinkd.workflow import run_rule


def main() -> None:
    results = [json.loads(Path(path).read_text()) for path in snakemake.input.results]
    table = with_paper_ablation(summarise(results))
    write_csv(table, snakemake.output.table)
    ablation_figure(table, snakemake.output.figure)
    milestones = summarise_milestones(results)
    write_csv(milestones, snakemake.output.epochs)
    milestones_figure(milestones, snakemake.output.epochs_figure)


run_rule(snakemake, main)
