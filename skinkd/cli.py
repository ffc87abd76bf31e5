"""The ``skinkd`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from skinkd.errors import SkinkdError

PREDICT_HELP = """\
Classify dermoscopy images as benign or malignant with an exported student.

MODEL is a .tflite (fp16 or int8) or .keras file with the model_card.json written beside it
by the workflow (results/<name>/export/); the card gives the preprocessing the model was
trained with and the decision threshold (chosen on the validation split for the configured
malignant sensitivity). PATH is image files or folders, searched recursively for
jpg/jpeg/png/bmp. Output: one row per image with path, prob_malignant, label and error;
an unreadable image gets its reason in the error column and the rest go on.
"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="skinkd", description="Skin-lesion classifier tools.")
    commands = main.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="classify images with an exported model",
        description=PREDICT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("model", metavar="MODEL", help=".tflite or .keras file, model_card.json beside it")
    predict.add_argument("paths", metavar="PATH", nargs="+", help="image files or folders")
    predict.add_argument("--out", help="output file: .json for JSON, anything else CSV (default: CSV on stdout)")
    predict.add_argument("--threshold", type=float, help="P(malignant) at or above which the label is malignant (default: the card's)")
    predict.add_argument("--threads", type=_positive, default=1, help="interpreter threads (default 1)")
    predict.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                         help="processes decoding and preprocessing images (default: all cores)")  # fmt: skip
    return main


def predict(args: argparse.Namespace) -> int:
    from skinkd.predict import Predictor, image_paths, predict_paths, write_predictions

    predictor = Predictor(args.model, threads=args.threads)
    paths = image_paths(args.paths)
    if not paths:
        raise SkinkdError(f"no images (jpg, jpeg, png, bmp) under {', '.join(args.paths)}")
    rows = list(predict_paths(predictor, paths, args.threshold, args.workers))
    text = write_predictions(rows, args.out)
    if args.out is None:
        sys.stdout.write(text)
    failed = sum(1 for row in rows if row["error"])
    logging.getLogger("skinkd").info(
        "%d images, %d malignant, %d unreadable (threshold %.4f)",
        len(rows),
        sum(1 for row in rows if row["label"] == predictor.class_names[1]),
        failed,
        predictor.threshold if args.threshold is None else args.threshold,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parser().parse_args(argv)
    try:
        return predict(args)
    except SkinkdError as exc:
        print(f"skinkd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
