"""Rule headline: the ROC AUC of the student, its int8 export and the teacher on the test
split and on every external set, with intervals, in one table."""

import json

from skinkd.atomic import write_csv
from skinkd.evaluate.evaluation import headline_table
from skinkd.workflow import run_rule


def main() -> None:
    evals = {
        model: json.loads(open(path).read())
        for model, path in zip(snakemake.params.models, snakemake.input.evals, strict=True)
    }
    externals = {
        name: json.loads(open(path).read())
        for name, path in zip(snakemake.params.sets, snakemake.input.externals, strict=True)
    }
    write_csv(headline_table(evals, externals), snakemake.output.headline)


run_rule(snakemake, main)
