"""Rule fine_tune_curves: loss and accuracy per epoch of the teacher's fine-tuning."""

import pandas as pd

from skinkd.evaluate.figures import training_curves_figure
from skinkd.workflow import run_rule


def main() -> None:
    history = pd.read_csv(snakemake.input.history)
    training_curves_figure({"fine-tuning": history}, snakemake.output.figure)


run_rule(snakemake, main)
