"""``skinkd predict``: classify image files with an exported student and its model card.

The card beside the model gives the preprocessing (the one function training used), the
class names and the decision threshold. Only numpy, OpenCV and ai_edge_litert are needed
for a ``.tflite`` model (the ``edge`` extra); a ``.keras`` model also needs Keras.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from skinkd.atomic import write_text
from skinkd.data.classes import malignant_probability
from skinkd.data.hashing import file_sha256, perceptual_hash, sha256
from skinkd.data.images import IMAGE_SUFFIXES, decode_image, read_bytes
from skinkd.data.preprocess import Preprocessing, preprocess_image
from skinkd.edge.export import read_model_card
from skinkd.edge.inference import load_classifier
from skinkd.errors import ConfigError, DataError, SkinkdError
from skinkd.parallel import map_chunks_in_processes

CARD_NAME = "model_card.json"
COLUMNS = ("path", "prob_malignant", "label", "error")
MODEL_SUFFIXES = (".tflite", ".keras")


def image_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders searched recursively for jpg/jpeg/png/bmp (sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            found.append(path)
    return found


class Predictor:
    """A model file plus its model card (beside it unless given), checked against each other."""

    def __init__(
        self, model: str | os.PathLike, threads: int = 1, card: str | os.PathLike | None = None
    ) -> None:
        self.model_path = Path(model)
        if self.model_path.suffix not in MODEL_SUFFIXES:
            raise ConfigError(f"{self.model_path}: a model must be a .tflite or .keras file")
        if not self.model_path.is_file():
            raise DataError(f"{self.model_path}: model file not found")
        card_path = self.model_path.parent / CARD_NAME if card is None else Path(card)
        if not card_path.is_file():
            raise DataError(
                f"{self.model_path}: no {CARD_NAME} beside the model; the card holds the "
                "preprocessing and threshold the model was trained with"
            )
        self.card = read_model_card(card_path)
        digest = file_sha256(self.model_path)
        if digest not in {entry["sha256"] for entry in self.card["files"].values()}:
            raise DataError(
                f"{card_path}: the card does not describe {self.model_path.name} (its SHA-256 is "
                "not among the card's files); use the card written with this model"
            )
        self.classifier = load_classifier(self.model_path, threads, self.card["malignant_outputs"])
        if self.classifier.input_size != int(self.card["image_size"]):
            raise DataError(
                f"{card_path}: image_size {self.card['image_size']} does not match the model's "
                f"input of {self.classifier.input_size} px"
            )
        self.preprocessing = Preprocessing.from_dict(self.card["preprocessing"])
        self.class_names: list[str] = list(self.card["class_names"])

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    def probabilities(self, images_uint8: np.ndarray) -> np.ndarray:
        """P(malignant) of preprocessed uint8 images (n, S, S, 3)."""
        return malignant_probability(self.classifier.predict_logits(images_uint8))


def prepare(
    path: Path, preprocessing: Preprocessing, hashes: bool = False
) -> tuple[np.ndarray | None, str, dict[str, str]]:
    """(the preprocessed image, "", its sha256 and phash if ``hashes``), or (None, why it
    could not be read, {}). One decode serves the model and the overlap check."""
    try:
        data = read_bytes(path)
        image = decode_image(data, str(path))
        found = {"sha256": sha256(data), "phash": perceptual_hash(image)} if hashes else {}
        return preprocess_image(image, preprocessing), "", found
    except SkinkdError as exc:
        return None, str(exc), {}
    except (OSError, cv2.error) as exc:
        return None, f"{path}: {exc}", {}


def predict_paths(
    predictor: Predictor,
    paths: Sequence[Path],
    threshold: float | None = None,
    workers: int = 1,
    chunk: int = 256,
    hashes: bool = False,
) -> Iterator[dict[str, Any]]:
    """One row per path: path, prob_malignant, label, error (empty when it worked), and
    with ``hashes`` the file's sha256 and the image's phash.

    Images are decoded and preprocessed by ``workers`` processes, ``chunk`` at a time: the
    next chunk is prepared while the model runs on this one, and memory stays bounded for
    any number of files.
    """
    threshold = predictor.threshold if threshold is None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"--threshold: {threshold} is not in [0, 1]")
    work = functools.partial(prepare, preprocessing=predictor.preprocessing, hashes=hashes)
    batches = [list(paths[start : start + chunk]) for start in range(0, len(paths), chunk)]
    for batch, prepared in zip(batches, map_chunks_in_processes(work, batches, workers), strict=True):
        good = [i for i, (image, _, _) in enumerate(prepared) if image is not None]
        probs = (
            predictor.probabilities(np.stack([prepared[i][0] for i in good]))
            if good
            else np.empty(0)
        )
        prob_of = dict(zip(good, probs, strict=True))
        for i, path in enumerate(batch):
            if i in prob_of:
                prob = float(prob_of[i])
                label = predictor.class_names[int(prob >= threshold)]
                row = {"path": str(path), "prob_malignant": prob, "label": label, "error": ""}
            else:
                row = {"path": str(path), "prob_malignant": None, "label": "", "error": prepared[i][1]}
            yield row | prepared[i][2]


def format_rows(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """CSV (columns path, prob_malignant, label, error) or a JSON list of the same records."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        prob = row["prob_malignant"]
        writer.writerow({**row, "prob_malignant": "" if prob is None else f"{prob:.6f}"})
    return out.getvalue()


def write_predictions(rows: Sequence[dict[str, Any]], out: str | os.PathLike | None) -> str:
    """Write the rows to ``out`` (JSON for .json, else CSV) atomically; the text if no ``out``."""
    fmt = "json" if out is not None and Path(out).suffix.lower() == ".json" else "csv"
    text = format_rows(rows, fmt)
    if out is not None:
        write_text(text, out)
    return text
