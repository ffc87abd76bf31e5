"""Rule synthesize: generate the embedded dermoscopy-like dataset."""

from pathlib import Path

from skinkd.data.synthetic import generate_synthetic
from skinkd.workflow import run_rule


def main() -> None:
    p = snakemake.params.synthetic
    generate_synthetic(
        Path(snakemake.output[0]),
        n_images=p["n_images"],
        seed=p["seed"],
        width=p["width"],
        height=p["height"],
        malignant_fraction=p["malignant_fraction"],
    )


run_rule(snakemake, main)
