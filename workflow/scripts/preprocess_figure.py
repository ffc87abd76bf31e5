"""Rule preprocess_figure: one benign and one malignant image after each stage."""

from skinkd.figures import preprocess_stages_figure
from skinkd.preprocess import Preprocessing
from skinkd.manifest import read_manifest
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
