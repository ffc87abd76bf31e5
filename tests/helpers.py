"""Small image-making and dataset-tree helpers shared by the tests (a plain module)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
from PIL import Image


def rgb_array(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """A smooth RGB uint8 array with distinct channels (compresses well as JPEG)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = rng.integers(40, 200, size=3)
    image = np.stack(
        [base[0] + x * 2, base[1] + y * 2, base[2] + (x + y)], axis=-1
    )
    return np.clip(image, 0, 255).astype(np.uint8)


def solid_rgb(rgb: tuple[int, int, int], height: int = 16, width: int = 16) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (height, width, 3)).copy()


def encode_rgb(image: np.ndarray, fmt: str = "JPEG", **save_args) -> bytes:
    """Encode an RGB (or grey, or RGBA) uint8 array with Pillow."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **save_args)
    return buf.getvalue()


def write_rgb(path: Path, image: np.ndarray | None = None, fmt: str | None = None, **save_args) -> Path:
    """Write an image file (format from the suffix unless given); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image is None:
        image = rgb_array(seed=hash(path.name) % 1000)
    if fmt is None:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[path.suffix.lower()]
    path.write_bytes(encode_rgb(image, fmt, **save_args))
    return path


def write_png16(path: Path, image: np.ndarray) -> Path:
    """Write a uint16 grey (H, W) or RGB (H, W, 3) array as a 16-bit PNG."""
    assert image.dtype == np.uint16
    path.parent.mkdir(parents=True, exist_ok=True)
    data = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", data)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


# The config.yaml augmentation ranges, for tests that train or augment.
AUGMENT = {"rotation": 20, "height_shift": 0.1, "width_shift": 0.1, "shear": 0.1,
           "horizontal_flip": True}  # fmt: skip

HAM_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


def ham_rows() -> list[dict[str, str]]:
    """Ten metadata rows covering all seven dx values, two images for some lesions."""
    spec = [
        ("HAM_0000001", "ISIC_0000001", "mel"),
        ("HAM_0000001", "ISIC_0000002", "mel"),
        ("HAM_0000002", "ISIC_0000003", "nv"),
        ("HAM_0000003", "ISIC_0000004", "nv"),
        ("HAM_0000003", "ISIC_0000005", "nv"),
        ("HAM_0000004", "ISIC_0000006", "bkl"),
        ("HAM_0000005", "ISIC_0000007", "bcc"),
        ("HAM_0000006", "ISIC_0000008", "akiec"),
        ("HAM_0000007", "ISIC_0000009", "vasc"),
        ("HAM_0000008", "ISIC_0000010", "df"),
    ]
    sexes = ["male", "female", "unknown"]
    return [
        {
            "lesion_id": lesion,
            "image_id": image,
            "dx": dx,
            "dx_type": "histo" if k % 2 else "follow_up",
            "age": str(30 + 5 * k),
            "sex": sexes[k % 3],
            "localization": "back" if k % 2 else "scalp",
        }
        for k, (lesion, image, dx) in enumerate(spec)
    ]


def write_ham_metadata(
    path: Path,
    rows: list[dict[str, str]],
    columns: list[str] | None = None,
    line_end: str = "\r\n",
) -> Path:
    columns = columns or HAM_COLUMNS
    lines = [",".join(columns)] + [",".join(r[c] for c in columns) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((line_end.join(lines) + line_end).encode())
    return path


def make_ham_tree(
    root: Path,
    rows: list[dict[str, str]] | None = None,
    layout: str = "parts",
    line_end: str = "\r\n",
    skip_images: tuple[str, ...] = (),
) -> tuple[Path, Path, dict[str, Path]]:
    """A HAM10000-like tree: ``layout`` "parts" (split over two part folders) or "images".

    Returns (root, metadata path, {image_id: image path}).
    """
    rows = rows if rows is not None else ham_rows()
    meta = write_ham_metadata(root / "HAM10000_metadata.csv", rows, line_end=line_end)
    paths = {}
    for k, row in enumerate(rows):
        if layout == "parts":
            folder = root / ("HAM10000_images_part_1" if k % 2 == 0 else "HAM10000_images_part_2")
        else:
            folder = root / "images"
        path = folder / f"{row['image_id']}.jpg"
        paths[row["image_id"]] = path
        if row["image_id"] not in skip_images:
            write_rgb(path, rgb_array(12, 16, seed=k))
    return root, meta, paths


def source_table(paths_labels: list[tuple[str | Path, int]]) -> pd.DataFrame:
    """A minimal source table (as the loaders produce) for build_manifest."""
    return pd.DataFrame(
        {
            "image_id": [f"img{k}" for k in range(len(paths_labels))],
            "path": [str(p) for p, _ in paths_labels],
            "label": [int(label) for _, label in paths_labels],
            "label_name": [("benign", "malignant")[label] for _, label in paths_labels],
            "group": [f"g{k}" for k in range(len(paths_labels))],
        }
    )


def assert_every_result_loads(workdir: Path) -> int:
    """Open every file under results/ with the reader of its kind; the count opened."""
    count = 0
    for path in sorted((workdir / "results").rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        suffix = path.suffix
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                for name in data.files:
                    data[name]
        elif suffix == ".json":
            json.loads(path.read_text())
        elif suffix == ".csv":
            pd.read_csv(path)
        elif suffix == ".keras":
            from skinkd.nn.models import load_model

            load_model(path)
        elif suffix == ".tflite":
            from ai_edge_litert.interpreter import Interpreter

            Interpreter(model_path=str(path)).allocate_tensors()
        else:
            continue
        count += 1
    return count


def metric_values(path: Path) -> dict[str, float]:
    """Every number of an evaluation JSON (metrics and their intervals), by its key path."""
    flat = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner)
        elif isinstance(value, list):
            for k, inner in enumerate(value):
                walk(f"{prefix}[{k}]", inner)
        elif isinstance(value, float | int) and not isinstance(value, bool):
            flat[prefix] = float(value)

    walk("", json.loads(path.read_text()))
    return flat


def assert_same_metrics(path: Path, reference: Path, atol: float = 1e-6) -> None:
    """The evaluation JSON at ``path`` has the keys and, within ``atol``, the numbers of ``reference``."""
    got, want = metric_values(path), metric_values(reference)
    assert got.keys() == want.keys() and len(want) > 10, path
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=atol, err_msg=str(path))


def exported_student(folder: Path, size: int, threshold: float = 0.3) -> SimpleNamespace:
    """A seeded (untrained) student of ``size`` px, saved as .keras, exported to fp16 and
    int8 TFLite, with its model card (default preprocessing, no mapping) in ``folder``."""
    import keras

    from skinkd.data.preprocess import Preprocessing, preprocess_image
    from skinkd.edge.export import export_tflite, write_model_card
    from skinkd.student.network import build_student

    params = Preprocessing(image_size=size)
    keras.utils.set_random_seed(0)
    student = build_student(size)
    keras_path, fp16, int8 = folder / "student.keras", folder / "fp16.tflite", folder / "int8.tflite"
    student.save(keras_path)
    representative = np.stack([preprocess_image(rgb_array(40, 50, seed=s), params) for s in range(16)])
    export_tflite(student, fp16, int8, representative=representative)
    card = write_model_card(
        folder / "model_card.json", image_size=size, preprocessing=params.to_dict(),
        class_names=["benign", "malignant"], threshold=threshold,
        threshold_choice={"split": "val", "target_sensitivity": 0.9},
        files={"keras": keras_path, "tflite_fp16": fp16, "tflite_int8": int8},
        test_metrics={}, training_data={}, config_hash="test",
    )  # fmt: skip
    return SimpleNamespace(folder=folder, keras=keras_path, fp16=fp16, int8=int8, card=card)
