"""The ``skinkd`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from skinkd.atomic import write_text
from skinkd.data.labelled import HAM_MALIGNANT, LAYOUTS
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


EVALUATE_HELP = """\
Score an exported student on a labelled set: the metrics of the workflow's evaluation with
95% bootstrap intervals, at the card's threshold (chosen on the run's validation split, not
re-tuned here) and at 0.5.

MODEL is a .tflite or .keras file with its model_card.json beside it. LABELS is a folder of
class folders (benign/, malignant/, or train|test/<class>/), a CSV with the columns
image,label (benign/malignant or 0/1; image paths relative to the CSV), or an ISIC
challenge ground-truth CSV (image,MEL,NV,BCC,AKIEC,BKL,DF,VASC; images found by name under
--images, default the CSV's folder) mapped with --mapping. --against a run's
results/<name>/data/splits.csv adds the overlap check: external images identical or near
(perceptual hash) to the run's images, and the metrics again without those the model
trained or was selected on.
"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _model_arguments(command: argparse.ArgumentParser) -> None:
    """MODEL, --threads and --workers: how predict and evaluate run an exported model."""
    command.add_argument("model", metavar="MODEL", help=".tflite or .keras file, model_card.json beside it")
    command.add_argument("--threads", type=_positive, default=1, help="interpreter threads (default 1)")
    command.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                         help="processes decoding and preprocessing images (default: all cores)")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="skinkd", description="Skin-lesion classifier tools.")
    commands = main.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="classify images with an exported model",
        description=PREDICT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_arguments(predict)
    predict.add_argument("paths", metavar="PATH", nargs="+", help="image files or folders")
    predict.add_argument("--out", help="output file: .json for JSON, anything else CSV (default: CSV on stdout)")
    predict.add_argument("--threshold", type=float, help="P(malignant) at or above which the label is malignant (default: the card's)")
    evaluate = commands.add_parser(
        "evaluate",
        help="score an exported model on a labelled set",
        description=EVALUATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_arguments(evaluate)
    evaluate.add_argument("labels", metavar="LABELS", help="class folders, an image,label CSV or an ISIC ground-truth CSV")
    evaluate.add_argument("--layout", choices=LAYOUTS, help="layout of LABELS (default: told from it)")
    evaluate.add_argument("--images", help="isic layout: folder holding the images (default: the CSV's folder)")
    evaluate.add_argument("--mapping", choices=sorted(HAM_MALIGNANT), help="isic layout: diagnoses to benign/malignant (default: the card's)")
    evaluate.add_argument("--against", metavar="MANIFEST", help="a run's splits.csv or manifest.csv: check and report overlap with it")
    evaluate.add_argument("--hash-distance", type=int, default=2, help="perceptual-hash bits at or below which two images match (default 2)")
    evaluate.add_argument("--on-bad-image", choices=("error", "skip"), default="error", help="stop at a bad row or image, or leave it out and list it (default error)")
    evaluate.add_argument("--out", help="write the full results as JSON to this file")
    evaluate.add_argument("--bootstrap", type=_positive, default=1000, help="bootstrap resamples (default 1000)")
    evaluate.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return main


def evaluate(args: argparse.Namespace) -> int:
    from skinkd.data.labelled import detect_layout, read_labelled_set
    from skinkd.edge.evaluate import format_report, score_set
    from skinkd.edge.predict import Predictor
    from skinkd.evaluate.external import read_reference

    if args.hash_distance < 0 or args.hash_distance > 64:
        raise SkinkdError(f"--hash-distance: {args.hash_distance} is not in 0..64")
    predictor = Predictor(args.model, threads=args.threads)
    layout = args.layout or detect_layout(args.labels)
    mapping = args.mapping or predictor.card["training_data"].get("mapping")
    if layout == "isic" and mapping is None:
        raise SkinkdError(
            f"{args.labels}: the card does not name a mapping of diagnoses to benign and "
            "malignant; give --mapping clinical or paper"
        )
    labelled = read_labelled_set(
        layout, args.labels, images=args.images, mapping=mapping or "clinical",
        on_bad_image=args.on_bad_image,
    )  # fmt: skip
    reference = read_reference(args.against) if args.against else None
    result = score_set(
        predictor, labelled, reference=reference, hash_distance=args.hash_distance,
        on_bad_image=args.on_bad_image, n_boot=args.bootstrap, seed=args.seed,
        workers=args.workers,
    )  # fmt: skip
    log = logging.getLogger("skinkd")
    for rejected in result["rejected"]:
        log.warning("left out: %s: %s", rejected["image"], rejected["reason"])
    if result["overlap"] is not None:
        log.info("overlap with %s: %s", args.against, result["overlap"])
    sys.stdout.write(format_report(result["models"]))
    if args.out:
        write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", args.out)
    return 0


def predict(args: argparse.Namespace) -> int:
    from skinkd.edge.predict import Predictor, image_paths, predict_paths, write_predictions

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
        return {"predict": predict, "evaluate": evaluate}[args.command](args)
    except SkinkdError as exc:
        print(f"skinkd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
