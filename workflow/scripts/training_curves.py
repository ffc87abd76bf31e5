"""Rule training_curves: loss and accuracy per epoch of the teacher and the student."""

import pandas as pd

from skinkd.evaluate.figures import training_curves_figure
from skinkd.workflow import run_rule


def main() -> None:
    for name in ("teacher", "student"):
        history = pd.read_csv(snakemake.input[name])
        training_curves_figure({name: history}, snakemake.output[name])


run_rule(snakemake, main)
