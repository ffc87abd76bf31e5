"""The teacher stage: preset resolution, feature cache, head and end-to-end training, soft labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinkd.cache import write_shard
from skinkd.errors import ConfigError
from skinkd.soft_labels import read_soft_labels
from skinkd.teacher import (
    cache_features,
    load_features,
    resolve_teacher,
    soft_labels,
    train_teacher_end_to_end,
    train_teacher_head,
)

AUGMENT = {"rotation": 10, "height_shift": 0.1, "width_shift": 0.1, "shear": 0.1,
           "horizontal_flip": True}  # fmt: skip
TEACHER_SECTION = {
    "preset": "tiny",
    "backbones": [],
    "weights": "none",
    "trainable_backbones": False,
    "augmented_views": 2,
    "se_reduction": 8,
    "optimizer": "adam",
    "learning_rate": 0.001,
    "batch_size": 8,
    "epochs": 1,
}


def test_resolve_teacher_expands_preset_and_weights():
    resolved = resolve_teacher(TEACHER_SECTION)
    assert resolved["backbones"] == ["tiny_cnn", "tiny_vit"]
    assert resolved["weights"] == {"tiny_cnn": None, "tiny_vit": None}
    assert "preset" not in resolved
    mixed = resolve_teacher({**TEACHER_SECTION, "preset": "paper", "weights": {"vit_b16": "v.npz"}})
    assert mixed["weights"] == {"resnet152v2": "imagenet", "convnext_base": "imagenet",
                                "vit_b16": "v.npz"}  # fmt: skip
    with pytest.raises(ConfigError, match="teacher.weights"):
        resolve_teacher({**TEACHER_SECTION, "weights": {"resnet50v2": "none"}})


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Two shards of 32-px images: bright discs are malignant, dark ones benign."""
    root = tmp_path_factory.mktemp("teacher")
    rng = np.random.default_rng(0)
    n = 40
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[:32, :32]
    disc = (yy - 16) ** 2 + (xx - 16) ** 2 < 64
    images = rng.integers(90, 140, (n, 32, 32, 3), dtype=np.uint8)
    images[:, disc] = np.where(labels[:, None, None] == 1, 230, 20).astype(np.uint8)
    ids = [f"IMG_{i:03d}" for i in range(n)]
    shards = [root / "shard_0.npz", root / "shard_1.npz"]
    write_shard(shards[0], images[:20], labels[:20], ids[:20])
    write_shard(shards[1], images[20:], labels[20:], ids[20:])
    split = np.array(["train"] * 24 + ["val"] * 8 + ["test"] * 8)
    splits = pd.DataFrame({"image_id": ids, "group": ids, "label": labels, "split": split})
    return root, shards, splits


def test_feature_cache_holds_every_split_and_the_augmented_views(tiny_data):
    root, shards, splits = tiny_data
    teacher = resolve_teacher(TEACHER_SECTION)
    out = root / "features.npz"
    cache_features(shards, splits, teacher, 32, AUGMENT, seed=0, out=out)
    data = np.load(out)
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        assert list(data[f"{split}/ids"]) == list(splits.loc[splits["split"] == split, "image_id"])
        assert data[f"{split}/tiny_cnn"].shape[0] == n
        assert data[f"{split}/tiny_cnn"].dtype == np.float16
    assert not np.array_equal(data["train_view1/tiny_cnn"], data["train/tiny_cnn"])
    assert not np.array_equal(data["train_view1/tiny_cnn"], data["train_view2/tiny_cnn"])
    features, labels, ids = load_features(out, "train", teacher["backbones"], with_views=True)
    assert features["tiny_vit"].shape[0] == len(labels) == len(ids) == 3 * 24
    np.testing.assert_array_equal(labels[:24], labels[24:48])


def test_head_on_the_cache_gives_soft_labels_for_every_image(tiny_data):
    root, shards, splits = tiny_data
    teacher = resolve_teacher(TEACHER_SECTION)
    features = root / "features_head.npz"
    cache_features(shards, splits, teacher, 32, AUGMENT, seed=0, out=features)
    model = root / "head.keras"
    train_teacher_head(features, teacher, seed=0, out_model=model, out_history=root / "h.csv")
    out = root / "soft_labels.npz"
    soft_labels(model, teacher, out, features_path=features)
    data = np.load(out)
    assert sorted(data["image_ids"]) == sorted(splits["image_id"])
    assert data["logits"].shape == (40, 2) and np.isfinite(data["logits"]).all()
    test_ids = list(splits.loc[splits["split"] == "test", "image_id"])[::-1]
    logits = read_soft_labels(out, "test", test_ids)
    rows = {i: k for k, i in enumerate(data["image_ids"])}
    np.testing.assert_array_equal(logits, data["logits"][[rows[i] for i in test_ids]])


def test_end_to_end_teacher_trains_backbones_and_labels_from_images(tiny_data):
    root, shards, splits = tiny_data
    teacher = resolve_teacher({**TEACHER_SECTION, "trainable_backbones": True})
    model = root / "teacher.keras"
    history = root / "teacher_history.csv"
    train_teacher_end_to_end(shards, splits, teacher, 32, AUGMENT, 0, model, history)
    assert len(pd.read_csv(history)) == 1
    out = root / "soft_labels_e2e.npz"
    soft_labels(model, teacher, out, shard_paths=shards, splits=splits)
    data = np.load(out)
    assert data["logits"].shape == (40, 2)
    assert list(np.unique(data["split"])) == ["test", "train", "val"]
