"""Rule mobilenetv2_weights: the offline ImageNet MobileNetV2 weights, verified and converted
to Keras once for every run (resources/weights/)."""

from skinkd.teacher.backbones.weights import convert_mobilenetv2
from skinkd.workflow import run_rule


def main() -> None:
    convert_mobilenetv2(snakemake.params.source, snakemake.output.weights)


run_rule(snakemake, main)
