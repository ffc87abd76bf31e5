"""The teacher stage: preset resolution, feature cache, head and end-to-end training, soft labels."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from skinkd.data.augment import Augmentation, view_transforms, warp_images
from skinkd.data.cache import load_split, write_shard
from skinkd.data.preprocess import rescale
from skinkd.errors import ConfigError
from skinkd.nn.models import load_model
from skinkd.teacher.features import cache_features, load_features
from skinkd.teacher.models import build_teacher
from skinkd.teacher.presets import resolve_teacher
from skinkd.teacher.soft_labels import (
    read_soft_labels,
    read_teacher_views,
    soft_labels,
    teacher_logits,
)
from skinkd.teacher.train import fine_tune_teacher, train_teacher_end_to_end, train_teacher_head

AUGMENT = {"rotation": 10, "height_shift": 0.1, "width_shift": 0.1, "shear": 0.1,
           "horizontal_flip": True}  # fmt: skip
TEACHER_SECTION = {
    "preset": "tiny",
    "backbones": [],
    "weights": "none",
    "trainable_backbones": False,
    "augmented_views": 2,
    "image_size": None,
    "preprocessing": "all",
    "classes": "binary",
    "se_reduction": 8,
    "optimizer": "adam",
    "learning_rate": 0.001,
    "batch_size": 8,
    "epochs": 1,
    "fine_tune_schedule": "constant",
    "fine_tune_warmup_epochs": 0,
    "fine_tune_weight_decay": 0.0,
    "fine_tune_label_smoothing": 0.0,
    "distillation_views": None,
    "tta": False,
}


def resolve(section=None, mapping="clinical", image_size=32):
    return resolve_teacher({**TEACHER_SECTION, **(section or {})}, mapping, image_size)


def test_resolve_teacher_expands_preset_and_weights():
    resolved = resolve()
    assert resolved["backbones"] == ["tiny_cnn", "tiny_vit"]
    assert resolved["weights"] == {"tiny_cnn": None, "tiny_vit": None}
    assert "preset" not in resolved
    mixed = resolve({"preset": "paper", "weights": {"vit_b16": "v.npz"}})
    assert mixed["weights"] == {"resnet152v2": "imagenet", "convnext_base": "imagenet",
                                "vit_b16": "v.npz"}  # fmt: skip
    with pytest.raises(ConfigError, match="teacher.weights"):
        resolve({"weights": {"resnet50v2": "none"}})


def test_resolve_teacher_sets_its_image_size_and_malignant_classes():
    assert resolve()["image_size"] == 32
    assert resolve({"image_size": 224})["image_size"] == 224
    assert resolve()["malignant"] == [False, True]
    # HAM_DX order: akiec, bcc, bkl, df, mel, nv, vasc.
    assert resolve({"classes": "dx"})["malignant"] == [True, True, False, False, True, False, False]
    paper = resolve({"classes": "dx"}, mapping="paper")["malignant"]
    assert paper == [True, True, True, False, True, False, True]
    assert resolve({"preset": "pretrained"})["backbones"] == ["mobilenetv2"]


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
    # Diagnoses consistent with the labels under the clinical mapping (mel/bcc malignant).
    dx = np.where(labels == 1, np.array(["mel", "bcc"])[np.arange(n) // 2 % 2], "nv")
    splits = pd.DataFrame(
        {"image_id": ids, "group": ids, "label": labels, "dx": dx, "split": split}
    )
    return root, shards, splits


def test_feature_cache_holds_every_split_and_the_augmented_views(tiny_data):
    root, shards, splits = tiny_data
    teacher = resolve()
    out = root / "features.npz"
    cache_features(shards, splits, teacher, AUGMENT, seed=0, out=out)
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
    # Each view is stored with the transforms that made it, drawn from the shared stream.
    augmentation = Augmentation.from_config(AUGMENT)
    np.testing.assert_array_equal(
        data["train_view2/transforms"], view_transforms(augmentation, 24, 0, 2)
    )


def cached_head_labels(tiny_data, teacher, tag: str):
    """The frozen-teacher stage on the tiny data: cache, head, soft labels; their paths."""
    root, shards, splits = tiny_data
    features, model = root / f"features_{tag}.npz", root / f"head_{tag}.keras"
    out = root / f"soft_labels_{tag}.npz"
    cache_features(shards, splits, teacher, AUGMENT, seed=0, out=features)
    train_teacher_head(
        features, splits, teacher, seed=0, out_model=model, out_history=root / f"h_{tag}.csv"
    )
    soft_labels(model, teacher, out, augment=AUGMENT, seed=0, features_path=features)
    return features, model, out


def test_head_on_the_cache_gives_soft_labels_for_every_image_and_view(tiny_data):
    splits = tiny_data[2]
    teacher = resolve()
    features, model, out = cached_head_labels(tiny_data, teacher, "binary")
    data = np.load(out)
    assert sorted(data["image_ids"]) == sorted(splits["image_id"])
    assert data["logits"].shape == (40, 2) and np.isfinite(data["logits"]).all()
    test_ids = list(splits.loc[splits["split"] == "test", "image_id"])[::-1]
    soft = read_soft_labels(out, "test", test_ids)
    rows = {i: k for k, i in enumerate(data["image_ids"])}
    np.testing.assert_array_equal(soft.logits, data["logits"][[rows[i] for i in test_ids]])
    assert soft.malignant == (False, True)
    # The views' logits are the head's on the cached view features, in training-id order.
    cache = np.load(features)
    head = load_model(model)
    view2 = {name: cache[f"train_view2/{name}"].astype(np.float32) for name in teacher["backbones"]}
    np.testing.assert_allclose(data["view_logits"][1], head.predict(view2, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(data["view_transforms"][1], cache["train_view2/transforms"])
    train_ids = list(splits.loc[splits["split"] == "train", "image_id"])
    transforms, logits = read_teacher_views(out, train_ids[::-1])
    assert transforms.shape == (2, 24, 2, 3) and logits.shape == (2, 24, 2)
    np.testing.assert_array_equal(logits[1], data["view_logits"][1][::-1])


def test_seven_class_teacher_stores_seven_logits_and_its_malignant_classes(tiny_data):
    splits = tiny_data[2]
    teacher = resolve({"classes": "dx", "augmented_views": 0})
    out = cached_head_labels(tiny_data, teacher, "dx")[2]
    data = np.load(out)
    assert data["logits"].shape == (40, 7)
    assert "view_logits" not in data
    soft = read_soft_labels(out, "test", list(splits["image_id"][-8:]))
    assert soft.malignant == tuple(teacher["malignant"])
    with pytest.raises(ConfigError, match="teacher.augmented_views"):
        read_teacher_views(out, list(splits["image_id"][:24]))


def dihedral_views(images: np.ndarray) -> list[np.ndarray]:
    """The eight flips and right-angle turns of each image, by numpy, the identity first."""
    turns = [np.rot90(images, k, axes=(1, 2)) for k in range(4)]
    return turns + [np.rot90(images[:, :, ::-1], k, axes=(1, 2)) for k in range(4)]


def test_frozen_teacher_with_tta_and_views_beyond_its_cache_labels_from_the_images(tiny_data):
    root, shards, splits = tiny_data
    teacher = resolve({"augmented_views": 1})
    features, model, plain = cached_head_labels(tiny_data, teacher, "views")
    out = root / "soft_labels_tta.npz"
    tta = {**teacher, "tta": True, "distillation_views": 3}
    with pytest.raises(ConfigError, match="teacher.tta, teacher.distillation_views: .* images"):
        soft_labels(model, tta, out, augment=AUGMENT, seed=0, features_path=features)
    soft_labels(model, tta, out, augment=AUGMENT, seed=0, features_path=features,
                shard_paths=shards, splits=splits)  # fmt: skip
    data, before = np.load(out), np.load(plain)
    assert data["dihedral_logits"].shape == (8, 40, 2) and "dihedral_logits" not in before
    np.testing.assert_allclose(data["logits"], data["dihedral_logits"].mean(axis=0), rtol=1e-6)
    # The identity view through the rebuilt backbones is what the float16 cache said.
    np.testing.assert_allclose(data["dihedral_logits"][0], before["logits"], atol=2e-2)
    # Each dihedral view is the head on the backbones' features of the turned image.
    from skinkd.teacher.features import frozen_backbones
    from skinkd.teacher.models import extract_features

    backbones, head = frozen_backbones(teacher, 0), load_model(model)
    test = np.flatnonzero(data["split"] == "test")
    images, _, _ = load_split(shards, splits, "test")
    for k, view in enumerate(dihedral_views(images)):
        maps = extract_features(backbones, np.ascontiguousarray(view), 8)
        expected = head.predict({n: f.astype(np.float32) for n, f in maps.items()}, verbose=0)
        np.testing.assert_allclose(data["dihedral_logits"][k][test], expected, atol=1e-4)
    # Three views: the cache's first, then two more from the same stream, from the images.
    assert data["view_logits"].shape == (3, 24, 2)
    np.testing.assert_array_equal(data["view_logits"][0], before["view_logits"][0])
    train_images, _, train_ids = load_split(shards, splits, "train")
    transforms = view_transforms(Augmentation.from_config(AUGMENT), len(train_ids), 0, 3)
    np.testing.assert_array_equal(data["view_transforms"][2], transforms)
    maps = extract_features(backbones, train_images, 8, transforms=transforms)
    expected = head.predict({n: f.astype(np.float32) for n, f in maps.items()}, verbose=0)
    np.testing.assert_allclose(data["view_logits"][2], expected, atol=1e-4)
    # The test rows the teacher's evaluation reads are the average, not the plain view.
    soft = read_soft_labels(out, "test", list(data["image_ids"][test]))
    np.testing.assert_array_equal(soft.logits, data["logits"][test])
    assert not np.allclose(soft.logits, data["dihedral_logits"][0][test])


def test_end_to_end_teacher_trains_backbones_and_labels_from_images_and_views(tiny_data):
    root, shards, splits = tiny_data
    teacher = resolve({"trainable_backbones": True, "augmented_views": 1})
    model = root / "teacher.keras"
    history = root / "teacher_history.csv"
    train_teacher_end_to_end(shards, splits, teacher, AUGMENT, 0, model, history)
    assert len(pd.read_csv(history)) == 1
    out = root / "soft_labels_e2e.npz"
    soft_labels(model, teacher, out, augment=AUGMENT, seed=3, shard_paths=shards, splits=splits)
    data = np.load(out)
    assert data["logits"].shape == (40, 2)
    assert list(np.unique(data["split"])) == ["test", "train", "val"]
    # The view logits are the teacher's on the training images warped by the stored views.
    images, _, ids = load_split(shards, splits, "train")
    transforms = view_transforms(Augmentation.from_config(AUGMENT), len(ids), 3, 1)
    np.testing.assert_array_equal(data["view_transforms"][0], transforms)
    warped = rescale(warp_images(images, transforms))
    expected = load_model(model).predict(warped, verbose=0)
    np.testing.assert_allclose(data["view_logits"][0], expected, atol=1e-5)
    # With TTA, an image teacher's logits of new images average its eight dihedral views.
    test_images, _, _ = load_split(shards, splits, "test")
    image_model = load_model(model)
    per_view = [image_model.predict(rescale(v), verbose=0) for v in dihedral_views(test_images)]
    tta = teacher_logits(model, {**teacher, "tta": True}, test_images, frozen=False, seed=3)
    np.testing.assert_allclose(tta, np.mean(per_view, axis=0), atol=1e-5)
    plain = teacher_logits(model, teacher, test_images, frozen=False, seed=3)
    np.testing.assert_allclose(plain, per_view[0], atol=1e-5)
    # A rule process imports only the labelling module, and still reads a teacher with a
    # ViT stream (its custom layers registered on the way).
    np.save(root / "test_images.npy", test_images)
    code = ("import json, sys, numpy as np; from skinkd.teacher.soft_labels import teacher_logits; "
            "t = json.loads(sys.argv[3]); "
            "print(json.dumps(teacher_logits(sys.argv[1], t, np.load(sys.argv[2]), frozen=False, seed=3).tolist()))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(model), str(root / "test_images.npy"),
                           json.dumps(teacher)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.array(json.loads(done.stdout.strip().splitlines()[-1])), plain, atol=1e-5)


def test_fine_tuning_trains_only_the_last_blocks_convolutions(tiny_data):
    root, shards, splits = tiny_data
    teacher = resolve({"preset": "pretrained", "weights": "none", "augmented_views": 0,
                       "fine_tune_blocks": 2, "fine_tune_learning_rate": 0.01,
                       "fine_tune_epochs": 1})  # fmt: skip
    features = root / "features_mnv2.npz"
    cache_features(shards, splits, teacher, AUGMENT, seed=0, out=features)
    head = root / "head_mnv2.keras"
    train_teacher_head(features, splits, teacher, seed=0, out_model=head, out_history=root / "h2.csv")
    tuned_path = root / "fine_tuned.keras"
    fine_tune_teacher(shards, splits, teacher, AUGMENT, 0, head, tuned_path, root / "ft.csv")
    tuned = load_model(tuned_path)
    # The starting point: the same random backbone (seeded) and the trained head.
    keras.utils.set_random_seed(0)
    start = build_teacher(["mobilenetv2"], 32, {"mobilenetv2": None}, se_reduction=8)
    before = start.get_layer("mobilenetv2")
    after = tuned.get_layer("mobilenetv2")

    def changed(name: str) -> bool:
        old, new = before.get_layer(name).get_weights(), after.get_layer(name).get_weights()
        return any(not np.array_equal(a, b) for a, b in zip(old, new, strict=True))

    assert changed("features_18_0") and changed("features_17_conv_3")
    assert changed("features_16_conv_0")
    assert not changed("features_15_conv_0") and not changed("features_0_0")
    assert not changed("features_17_conv_1")  # BatchNorm keeps its statistics
    assert len(pd.read_csv(root / "ft.csv")) == 1
    # Warm-up, cosine decay, weight decay and label smoothing: two epochs, both recorded.
    scheduled = resolve({**teacher, "fine_tune_epochs": 2, "fine_tune_schedule": "cosine",
                         "fine_tune_warmup_epochs": 1, "fine_tune_weight_decay": 0.01,
                         "fine_tune_label_smoothing": 0.1, "preset": "pretrained"})  # fmt: skip
    fine_tune_teacher(shards, splits, scheduled, AUGMENT, 0, head, root / "ft2.keras", root / "ft2.csv")
    assert len(pd.read_csv(root / "ft2.csv")) == 2
    with pytest.raises(ConfigError, match="only the mobilenetv2 backbone"):
        fine_tune_teacher(shards, splits, resolve({"fine_tune_blocks": 1}), AUGMENT, 0, head,
                          tuned_path, root / "ft.csv")  # fmt: skip
