"""Rule metrics_table: every model's metrics in one table, beside the paper; figures."""

import json

import pandas as pd

from skinkd.atomic import write_csv
from skinkd.evaluate.evaluation import metrics_table
from skinkd.evaluate.figures import confusion_matrix_figure, roc_figure
from skinkd.runs.paper import paper_comparison
from skinkd.workflow import run_rule


def main() -> None:
    evals = [json.loads(open(path).read()) for path in snakemake.input.evals]
    write_csv(metrics_table(evals), snakemake.output.metrics)
    write_csv(paper_comparison(evals), snakemake.output.paper)
    confusion_matrix_figure(evals, snakemake.output.confusion)
    curves = {}
    for evaluation, path in zip(evals, snakemake.input.predictions, strict=True):
        predictions = pd.read_csv(path)
        curves[evaluation["model"]] = (predictions["label"], predictions["prob_malignant"])
    roc_figure(curves, snakemake.output.roc)


run_rule(snakemake, main)
