"""Rule preprocess_figure: one benign and one malignant image after each stage."""

from skinkd.data.manifest import read_manifest
from skinkd.data.preprocess import Preprocessing
from skinkd.evaluate.figures import preprocess_stages_figure
from skinkd.workflow import run_rule


def main() -> None:
    manifest = read_manifest(snakemake.input.manifest)
    examples = [
        (name, manifest.loc[manifest["label_name"] == name, "path"].iloc[0])
        for name in ("benign", "malignant")
    ]
    preprocess_stages_figure(
        examples, Preprocessing.from_dict(snakemake.params.preprocessing), snakemake.output.figure
    )


run_rule(snakemake, main)
