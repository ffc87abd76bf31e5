"""`skinkd predict`: the same preprocessing as training, the card's threshold, bad files
reported in their rows, clear errors for a missing or mismatched card, an edge install."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import keras
import numpy as np
import pytest

from conftest import PROJECT
from helpers import exported_student, rgb_array, write_rgb
from skinkd.data.classes import malignant_probability
from skinkd.data.images import read_image
from skinkd.data.preprocess import Preprocessing, preprocess_image
from skinkd.edge.export import TFLiteClassifier
from skinkd.edge.predict import Predictor, image_paths, predict_paths, write_predictions
from skinkd.errors import DataError

SIZE = 32
PARAMS = Preprocessing(image_size=SIZE)
SKINKD = Path(sys.executable).with_name("skinkd")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> SimpleNamespace:
    """A seeded (untrained) 32-px student, exported, with its model card."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TFLite export needs KERAS_BACKEND=tensorflow")
    return exported_student(tmp_path_factory.mktemp("model"), SIZE)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> SimpleNamespace:
    """Images of every accepted kind in nested folders, plus files that must fail alone."""
    root = tmp_path_factory.mktemp("images")
    good = [
        write_rgb(root / "a.jpg", rgb_array(150, 200, seed=1)),
        write_rgb(root / "b.PNG", rgb_array(120, 90, seed=2), fmt="PNG"),
        write_rgb(root / "sub" / "deeper" / "c.bmp", rgb_array(64, 64, seed=3), fmt="BMP"),
        write_rgb(root / "sub" / "d.jpeg", rgb_array(300, 400, seed=4)),
    ]
    grey = root / "sub" / "grey.png"
    cv2.imwrite(str(grey), rgb_array(50, 60, seed=5)[:, :, 0])
    truncated = root / "truncated.jpg"
    truncated.write_bytes((root / "a.jpg").read_bytes()[:200])
    (root / "notes.txt").write_text("not an image, and not picked up from a folder")
    return SimpleNamespace(root=root, good=good, grey=grey, truncated=truncated)


def expected_probabilities(model_path: Path, paths: list[Path]) -> np.ndarray:
    """Training's pipeline by hand: read, the six stages, the TFLite model."""
    batch = np.stack([preprocess_image(read_image(p), PARAMS) for p in paths])
    return malignant_probability(TFLiteClassifier(model_path).predict_logits(batch))


def test_folders_are_searched_recursively_for_image_suffixes(images):
    found = image_paths([images.root])
    assert sorted(found) == sorted([*images.good, images.grey, images.truncated])
    assert image_paths([images.root / "notes.txt"]) == [images.root / "notes.txt"]


@pytest.mark.parametrize("kind", ["fp16", "int8", "keras"])
def test_predictions_match_the_training_preprocessing_and_the_card_threshold(model, images, kind):
    predictor = Predictor(getattr(model, kind))
    paths = [*images.good, images.grey]
    rows = list(predict_paths(predictor, paths, workers=2))
    assert [row["path"] for row in rows] == [str(p) for p in paths]
    prob = np.array([row["prob_malignant"] for row in rows])
    reference = model.int8 if kind == "int8" else model.fp16
    np.testing.assert_allclose(prob, expected_probabilities(reference, paths), atol=1e-3 if kind == "keras" else 1e-6)
    assert [row["label"] for row in rows] == ["malignant" if p >= 0.3 else "benign" for p in prob]
    assert all(row["error"] == "" for row in rows)
    cut = float(np.median(prob))
    relabelled = list(predict_paths(predictor, paths, threshold=cut))
    assert [row["label"] for row in relabelled] == ["malignant" if p >= cut else "benign" for p in prob]


def test_unreadable_files_get_their_reason_and_the_batch_goes_on(model, images):
    paths = [images.truncated, images.good[0], images.root / "missing.png", images.root / "notes.txt"]
    rows = list(predict_paths(Predictor(model.int8), paths))
    assert [bool(row["error"]) for row in rows] == [True, False, True, True]
    assert str(images.truncated) in rows[0]["error"] and "truncated" in rows[0]["error"]
    assert "does not exist" in rows[2]["error"]
    assert rows[1]["prob_malignant"] == pytest.approx(expected_probabilities(model.int8, [images.good[0]])[0])
    assert rows[0]["prob_malignant"] is None and rows[0]["label"] == ""


def test_model_without_card_or_with_a_foreign_card_is_a_clear_error(model, tmp_path):
    lonely = tmp_path / "lonely" / "student_int8.tflite"
    lonely.parent.mkdir()
    shutil.copy(model.int8, lonely)
    with pytest.raises(DataError, match="no model_card.json beside the model"):
        Predictor(lonely)
    card = json.loads((model.folder / "model_card.json").read_text())
    shutil.copy(model.fp16, tmp_path / "fp16.tflite")
    (tmp_path / "model_card.json").write_text(json.dumps({**card, "image_size": 64}))
    with pytest.raises(DataError, match="image_size 64 does not match the model's input of 32 px"):
        Predictor(tmp_path / "fp16.tflite")
    other = tmp_path / "other" / "fp16.tflite"
    other.parent.mkdir()
    other.write_bytes(model.int8.read_bytes())
    foreign = {**card, "files": {"tflite_fp16": card["files"]["tflite_fp16"]}}
    (other.parent / "model_card.json").write_text(json.dumps(foreign))
    with pytest.raises(DataError, match="does not describe fp16.tflite"):
        Predictor(other)


def test_output_is_csv_or_json_by_extension(tmp_path):
    rows = [{"path": "x.jpg", "prob_malignant": 0.25, "label": "benign", "error": ""},
            {"path": "y.jpg", "prob_malignant": None, "label": "", "error": "y.jpg: empty file"}]  # fmt: skip
    write_predictions(rows, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as f:
        read = list(csv.DictReader(f))
    assert read[0] == {"path": "x.jpg", "prob_malignant": "0.250000", "label": "benign", "error": ""}
    assert read[1]["error"] == "y.jpg: empty file" and read[1]["prob_malignant"] == ""
    write_predictions(rows, tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == rows


def run_cli(executable: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(executable), *args], capture_output=True, text=True, env=env)


def test_console_script_help_and_errors(model, images, tmp_path):
    help_text = run_cli(SKINKD, "predict", "--help")
    assert help_text.returncode == 0 and "model_card.json" in help_text.stdout
    assert "--threshold" in help_text.stdout and "--threads" in help_text.stdout
    lonely = tmp_path / "m.tflite"
    shutil.copy(model.int8, lonely)
    result = run_cli(SKINKD, "predict", str(lonely), str(images.root))
    assert result.returncode == 2 and "no model_card.json beside the model" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run_cli(SKINKD, "predict", str(model.int8), str(tmp_path / "empty"))
    assert result.returncode == 2 and "no images" in result.stderr


def test_console_script_writes_json(model, images, tmp_path):
    out = tmp_path / "predictions.json"
    result = run_cli(SKINKD, "predict", str(model.int8), str(images.root), "--out", str(out), "--threads", "2")
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 6 and sum(bool(r["error"]) for r in rows) == 1
    assert "6 images" in result.stderr and "1 unreadable" in result.stderr


@pytest.fixture(scope="module")
def edge_venv(tmp_path_factory) -> Path:
    """A fresh venv with only `pip install skinkd[edge]` (numpy, OpenCV, ai-edge-litert)."""
    root = tmp_path_factory.mktemp("edge")
    # A copy of the package, so the build writes nothing into the checkout.
    source = root / "source"
    source.mkdir()
    shutil.copy(PROJECT / "pyproject.toml", source)
    shutil.copytree(PROJECT / "skinkd", source / "skinkd", ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run([*pip, f"{source}[edge]"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"pip install skinkd[edge] failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return venv


def test_edge_install_predicts_without_tensorflow_or_snakemake(edge_venv, model, images, tmp_path):
    python = edge_venv / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for heavy in ("tensorflow", "keras", "snakemake", "pandas"):
        probe = subprocess.run([str(python), "-c", f"import {heavy}"], capture_output=True, env=env)
        assert probe.returncode != 0, f"{heavy} is importable in the edge install"
    out = tmp_path / "edge.csv"
    result = run_cli(edge_venv / "bin" / "skinkd", "predict", str(model.int8), str(images.root),
                     "--out", str(out), env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as f:
        rows = {row["path"]: row for row in csv.DictReader(f)}
    paths = [*images.good, images.grey]
    for path, prob in zip(paths, expected_probabilities(model.int8, paths), strict=True):
        assert float(rows[str(path)]["prob_malignant"]) == pytest.approx(prob, abs=1e-6)
    assert rows[str(images.truncated)]["error"]
    keras_model = run_cli(edge_venv / "bin" / "skinkd", "predict", str(model.keras), str(images.root), env=env)
    assert keras_model.returncode == 2 and "needs Keras and TensorFlow" in keras_model.stderr


def test_edge_install_evaluates_a_labelled_set_with_the_overlap_check(edge_venv, model, images, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    labels = images.root / "labels.csv"
    rel = [path.relative_to(images.root).as_posix() for path in images.good]
    labels.write_text("image,label\n" + "".join(f"{p},{i % 2}\n" for i, p in enumerate(rel)))
    run = tmp_path / "run" / "data"
    run.mkdir(parents=True)
    from skinkd.data.hashing import inspect_image

    first = inspect_image(str(images.good[0]))
    (run / "manifest.csv").write_text(f"image_id,sha256,phash\nseen,{first['sha256']},{first['phash']}\n")
    (run / "splits.csv").write_text("image_id,split\nseen,train\n")
    out = tmp_path / "result.json"
    result = run_cli(edge_venv / "bin" / "skinkd", "evaluate", str(model.int8), str(labels),
                     "--against", str(run.parent), "--out", str(out), "--bootstrap", "50", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "roc_auc" in result.stdout and "validation (0.300)" in result.stdout
    report = json.loads(out.read_text())
    assert report["overlap"]["identical"] == 1 and report["overlap"]["seen"] == 1
    subsets = report["models"][model.int8.name]
    assert subsets["all"]["n"] == 4 and subsets["without_overlap"]["n"] == 3
    expected = expected_probabilities(model.int8, images.good)
    np.testing.assert_allclose([row["prob_malignant"] for row in report["rows"]], expected, atol=1e-6)


def test_predict_applies_the_color_constancy_training_used(model, images, tmp_path):
    """The card records stage 0 as training ran it; predict reads and applies it."""
    balanced = Preprocessing.from_dict(
        {**PARAMS.to_dict(), "color_constancy": {"method": "shades_of_gray", "p": 6}}
    )
    folder = tmp_path / "balanced"
    folder.mkdir()
    shutil.copy(model.fp16, folder / "fp16.tflite")
    card = json.loads((model.folder / "model_card.json").read_text())
    card["preprocessing"] = balanced.to_dict()
    (folder / "model_card.json").write_text(json.dumps(card))
    rows = list(predict_paths(Predictor(folder / "fp16.tflite"), images.good))
    prob = np.array([row["prob_malignant"] for row in rows])
    batch = np.stack([preprocess_image(read_image(p), balanced) for p in images.good])
    expected = malignant_probability(TFLiteClassifier(model.fp16).predict_logits(batch))
    np.testing.assert_allclose(prob, expected, atol=1e-6)
    assert not np.allclose(prob, expected_probabilities(model.fp16, images.good), atol=1e-4)
