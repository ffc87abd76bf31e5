"""Tests for the synthetic dermoscopy-like dataset generator."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinkd.data import synthetic
from skinkd.data.lesions import render_lesion
from skinkd.data.synthetic import generate_synthetic

N_LEARN = 600
# Small images keep the 600-image set fast; the class statistics hold at this size too.
LEARN_W, LEARN_H = 128, 96


@pytest.fixture(scope="module")
def learn_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, list[np.ndarray]]:
    out = tmp_path_factory.mktemp("learn") / "synthetic"
    meta = generate_synthetic(out, N_LEARN, seed=0, width=LEARN_W, height=LEARN_H)
    images = [_read_rgb(out / "images" / f"{i}.jpg") for i in meta["image_id"]]
    return out, meta, images


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _cv_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=folds).mean())


def _channel_stats(img: np.ndarray) -> np.ndarray:
    px = img.reshape(-1, 3).astype(np.float64)
    return np.r_[px.mean(axis=0), px.std(axis=0)]


def _structure_features(img: np.ndarray) -> np.ndarray:
    """Otsu lesion mask -> solidity, perimeter^2/area, colour spread inside the lesion."""
    height, width = img.shape[:2]
    s = min(height, width)
    k = max(3, int(s / 20) | 1)
    # A closing wipes out thin dark hairs before thresholding.
    clean = cv2.morphologyEx(img, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    gray = cv2.GaussianBlur(cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY), (0, 0), 1.0)
    _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(mask)
    # The lesion: a large component near the centre (not a dark vignette corner).
    best, best_score = None, -1.0
    for i in range(1, n):
        cx, cy = centres[i]
        score = stats[i, cv2.CC_STAT_AREA] / (
            1.0 + ((cx - width / 2) ** 2 + (cy - height / 2) ** 2) / (0.25 * s * s)
        )
        if score > best_score:
            best, best_score = i, score
    if best is None:
        return np.zeros(5)
    lesion = (labels == best).astype(np.uint8)
    contours, _ = cv2.findContours(lesion, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(c) + 1.0
    hull = cv2.contourArea(cv2.convexHull(c)) + 1.0
    perimeter = cv2.arcLength(c, True)
    inside = clean[lesion > 0].astype(np.float64)
    return np.r_[area / hull, perimeter**2 / area, inside.std(axis=0)]


def _labels(meta: pd.DataFrame) -> np.ndarray:
    return (meta["label"] == "malignant").to_numpy().astype(int)


def test_channel_statistics_do_not_separate_classes(learn_set) -> None:
    _, meta, images = learn_set
    x = np.array([_channel_stats(img) for img in images])
    acc = _cv_accuracy(x, _labels(meta))
    assert acc < 0.85, f"per-channel mean/std separate the classes too well: {acc:.3f}"


def test_lesion_structure_separates_classes(learn_set) -> None:
    _, meta, images = learn_set
    y = _labels(meta)
    acc_struct = _cv_accuracy(np.array([_structure_features(img) for img in images]), y)
    acc_stats = _cv_accuracy(np.array([_channel_stats(img) for img in images]), y)
    assert acc_struct >= 0.85, f"border/colour structure should be learnable: {acc_struct:.3f}"
    assert acc_struct >= acc_stats + 0.1


def test_metadata_rows_columns_and_class_share(learn_set) -> None:
    out, meta, _ = learn_set
    assert list(meta.columns) == ["image_id", "lesion_id", "label", "width", "height"]
    assert len(meta) == N_LEARN
    assert list(meta["image_id"]) == [f"SYN_{i:06d}" for i in range(N_LEARN)]
    assert set(meta["label"]) == {"benign", "malignant"}
    assert abs((meta["label"] == "malignant").mean() - 0.4) <= 0.02
    assert (meta["width"] == LEARN_W).all() and (meta["height"] == LEARN_H).all()
    on_disk = pd.read_csv(out / "metadata.csv")
    pd.testing.assert_frame_equal(on_disk, meta)
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i}.jpg" for i in meta["image_id"]]


def test_views_of_a_lesion_share_label_and_most_lesions_have_one_view(learn_set) -> None:
    _, meta, _ = learn_set
    per_lesion = meta.groupby("lesion_id", sort=True)
    assert (per_lesion["label"].nunique() == 1).all()
    views = per_lesion.size()
    assert views.min() >= 1 and views.max() <= 3
    assert 0.15 <= (views > 1).mean() <= 0.35
    lesion_ids = list(dict.fromkeys(meta["lesion_id"]))
    assert lesion_ids == [f"SYNL_{i:06d}" for i in range(len(lesion_ids))]
    # Views of one lesion are consecutive images.
    assert (meta["lesion_id"] != meta["lesion_id"].shift()).sum() == len(lesion_ids)


def test_views_are_near_duplicates_not_identical(learn_set) -> None:
    _, meta, images = learn_set
    small = [cv2.resize(img, (16, 12), interpolation=cv2.INTER_AREA).astype(np.float64) for img in images]
    same, other = [], []
    for _, idx in meta.groupby("lesion_id").groups.items():
        if len(idx) < 2:
            continue
        a, b = idx[0], idx[1]
        assert not np.array_equal(images[a], images[b])
        same.append(np.abs(small[a] - small[b]).mean())
        other.append(np.abs(small[a] - small[(a + len(idx) + 1) % len(small)]).mean())
    assert same, "expected some multi-view lesions"
    assert np.median(same) < 0.5 * np.median(other)


def test_same_arguments_give_identical_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "syn", tmp_path / "b" / "syn"
    generate_synthetic(a, 25, seed=7, width=64, height=48)
    generate_synthetic(b, 25, seed=7, width=64, height=48)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 26
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    generate_synthetic(b, 25, seed=8, width=64, height=48)
    assert (a / "images" / "SYN_000000.jpg").read_bytes() != (b / "images" / "SYN_000000.jpg").read_bytes()


def test_non_default_size_images_match_metadata(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    meta = generate_synthetic(out, 6, seed=1, width=100, height=60, malignant_fraction=0.5)
    assert (meta["width"] == 100).all() and (meta["height"] == 60).all()
    for image_id in meta["image_id"]:
        assert _read_rgb(out / "images" / f"{image_id}.jpg").shape == (60, 100, 3)


@pytest.mark.parametrize("malignant", [False, True])
@pytest.mark.parametrize("size", [(200, 150), (600, 450), (32, 32)])
def test_render_lesion_returns_rgb_uint8(malignant: bool, size: tuple[int, int]) -> None:
    width, height = size
    img = render_lesion(np.random.default_rng(3), malignant, width, height)
    assert img.shape == (height, width, 3) and img.dtype == np.uint8
    assert img.std() > 5  # not a blank frame


def test_images_have_dark_vignette_corners(learn_set) -> None:
    _, _, images = learn_set
    stack = np.stack(images).astype(np.float64).mean(axis=(0, 3))  # average frame, grey
    h, w = stack.shape
    corners = np.mean(
        [stack[:6, :6].mean(), stack[:6, -6:].mean(), stack[-6:, :6].mean(), stack[-6:, -6:].mean()]
    )
    edge_middles = np.mean(
        [stack[:6, w // 2 - 3 : w // 2 + 3].mean(), stack[-6:, w // 2 - 3 : w // 2 + 3].mean()]
    )
    assert corners < 0.85 * edge_middles


def test_existing_output_is_replaced_atomically(tmp_path: Path) -> None:
    out = tmp_path / "syn"
    (out / "images").mkdir(parents=True)
    (out / "stale.txt").write_text("old")
    (out / "images" / "SYN_999999.jpg").write_bytes(b"old")
    meta = generate_synthetic(out, 5, seed=2, width=48, height=40)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i}.jpg" for i in meta["image_id"]]
    assert [p.name for p in tmp_path.iterdir()] == ["syn"], "temporary directory left behind"


def test_failed_run_keeps_previous_dataset_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "syn"
    generate_synthetic(out, 5, seed=2, width=48, height=40)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real_imencode = cv2.imencode

    def flaky_imencode(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed mid-run")
        return real_imencode(*args, **kwargs)

    monkeypatch.setattr(synthetic.cv2, "imencode", flaky_imencode)
    with pytest.raises(KeyboardInterrupt):
        generate_synthetic(out, 5, seed=9, width=48, height=40)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["syn"], "temporary directory left behind"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_images": 1}, "n_images"),
        ({"n_images": 0}, "n_images"),
        ({"width": 31}, "width"),
        ({"height": 16}, "height"),
        ({"malignant_fraction": 0.0}, "malignant_fraction"),
        ({"malignant_fraction": 1.0}, "malignant_fraction"),
        ({"malignant_fraction": 0.01}, "malignant_fraction"),  # rounds to no malignant image
        ({"views_per_lesion_max": 0}, "views_per_lesion_max"),
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
    ],
)
def test_bad_arguments_raise_value_error(tmp_path: Path, kwargs: dict, name: str) -> None:
    args = {"n_images": 10, "seed": 0, "width": 64, "height": 48} | kwargs
    with pytest.raises(ValueError, match=name):
        generate_synthetic(tmp_path / "syn", **args)
    assert not (tmp_path / "syn").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n_images", [2, 3, 4, 7])
def test_tiny_datasets_have_both_classes(tmp_path: Path, n_images: int) -> None:
    for seed in range(5):
        meta = generate_synthetic(tmp_path / "syn", n_images, seed=seed, width=32, height=32)
        assert len(meta) == n_images
        assert set(meta["label"]) == {"benign", "malignant"}
        assert (meta.groupby("lesion_id")["label"].nunique() == 1).all()
