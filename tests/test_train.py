"""Distillation loss, Distiller, augmentation, batch feeding and best-on-val training."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from helpers import AUGMENT
from skinkd.data.augment import Augmentation, compose_transforms, warp_images
from skinkd.data.classes import binary_logits
from skinkd.data.preprocess import rescale
from skinkd.errors import ConfigError, DataError
from skinkd.nn.batches import FeatureBatches, ImageBatches, TeacherViews, pack_targets
from skinkd.nn.fit import (
    Adafactor,
    MalignantAUC,
    SmoothedSparseCrossentropy,
    WarmupSchedule,
    fit_classifier,
    make_optimizer,
)
from skinkd.nn.models import MalignantLogits, with_binary_output
from skinkd.student.distill import Distiller, distillation_loss
from skinkd.student.network import build_student
from skinkd.student.train import train_student

PROJECT = Path(__file__).resolve().parents[1]

# Fixed logits of moderate size: the reference below uses plain exp / sum, no tricks.
LABELS = np.array([0, 1, 1, 0, 1])
STUDENT = np.array([[2.0, -1.0], [0.5, 0.3], [-1.2, 2.2], [0.1, 0.0], [3.0, -2.0]])
TEACHER = np.array([[1.5, -0.5], [-0.3, 1.1], [0.0, 3.0], [2.0, -1.0], [-1.0, 0.5]])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def reference_loss(labels, student, teacher, temperature, alpha) -> float:
    """The paper's formula written out in float64 numpy."""
    ce = -np.log(softmax(student)[np.arange(len(labels)), labels])
    p_t, p_s = softmax(teacher / temperature), softmax(student / temperature)
    kl = (p_t * np.log(p_t / p_s)).sum(axis=1)
    return float(np.mean(alpha * ce + (1 - alpha) * temperature**2 * kl))


def lesion_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth images with an off-centre dark blob: rotations, shifts and flips all change them."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(0.3, 0.5, 2) * size
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (size / 6) ** 2))
        base = 200 - 120 * blob + 20 * x / size
        images[i] = np.clip(base[..., None] * rng.uniform(0.7, 1.0, 3), 0, 255).astype(np.uint8)
    return images


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_distillation_loss_equals_numpy_formula(temperature, alpha):
    loss = distillation_loss(LABELS, STUDENT.astype("float32"), TEACHER, temperature, alpha)
    expected = reference_loss(LABELS, STUDENT, TEACHER, temperature, alpha)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_alpha_one_is_sparse_categorical_crossentropy_from_logits():
    loss = distillation_loss(LABELS, STUDENT.astype("float32"), TEACHER, 4.0, 1.0)
    keras_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(LABELS, STUDENT)
    assert float(loss) == pytest.approx(float(keras_ce), rel=1e-6)


def test_soft_term_is_temperature_squared_times_kl():
    p_t, p_s = softmax(TEACHER / 4.0), softmax(STUDENT / 4.0)
    kl = float(np.mean((p_t * np.log(p_t / p_s)).sum(axis=1)))
    loss = float(distillation_loss(LABELS, STUDENT.astype("float32"), TEACHER, 4.0, 0.0))
    assert loss / kl == pytest.approx(16.0, rel=1e-5)


def test_soft_term_vanishes_when_student_matches_teacher():
    loss = distillation_loss(LABELS, TEACHER.astype("float32"), TEACHER, 2.0, 0.0)
    assert abs(float(loss)) < 1e-6


def test_distiller_loss_reads_packed_targets_and_metrics_see_hard_labels():
    keras.utils.set_random_seed(0)
    student = build_student(32)
    distiller = Distiller(student, temperature=2.0, alpha=0.3)
    distiller.compile(metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    images = rescale(lesion_images(6))
    labels = np.array([0, 1, 0, 1, 1, 0])
    teacher = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)
    logits = keras.ops.convert_to_numpy(student(images)).astype(np.float64)

    loss = distiller.compute_loss(y=pack_targets(labels, teacher), y_pred=student(images))
    assert float(loss) == pytest.approx(
        reference_loss(labels, logits, teacher.astype(np.float64), 2.0, 0.3), rel=1e-5
    )
    results = distiller.evaluate(
        images, pack_targets(labels, teacher), verbose=0, return_dict=True
    )
    assert results["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == labels))


def test_distiller_rejects_targets_without_teacher_logits():
    distiller = Distiller(build_student(32), temperature=1.0, alpha=0.5)
    images = rescale(lesion_images(2))
    with pytest.raises(DataError, match=r"\(batch, 3\)"):
        distiller.compute_loss(y=np.zeros((2, 1), np.float32), y_pred=distiller(images))


def test_pack_targets_layout_and_shape_check():
    targets = pack_targets(np.array([1, 0]), np.array([[0.5, -0.5], [2.0, 1.0]]))
    np.testing.assert_array_equal(targets, [[1, 0.5, -0.5], [0, 2.0, 1.0]])
    assert targets.dtype == np.float32
    with pytest.raises(DataError, match="expected \\(2, C\\)"):
        pack_targets(np.array([1, 0]), np.zeros((3, 2)))


def test_image_batches_shapes_dtypes_and_range():
    images = lesion_images(10)
    labels = np.arange(10) % 2
    plain = ImageBatches(images, labels, batch_size=4)
    assert len(plain) == 3
    x, y = plain[2]
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(x, images[8:10] / np.float32(255))
    assert y.dtype == np.int32 and list(y) == [0, 1]

    teacher = np.arange(20, dtype=np.float32).reshape(10, 2)
    _, targets = ImageBatches(images, labels, batch_size=4, teacher_logits=teacher)[0]
    np.testing.assert_array_equal(targets, np.column_stack([labels[:4], teacher[:4]]))
    with pytest.raises(IndexError):
        plain[3]


def test_shuffled_order_is_seeded_new_each_epoch_and_complete():
    images = lesion_images(12)
    labels = np.arange(12)  # the label is the image's position: it shows the order

    def epoch_orders(seed: int) -> list[list[int]]:
        batches = ImageBatches(images, labels, batch_size=5, shuffle=True, seed=seed)
        orders = []
        for _ in range(3):
            orders.append([int(v) for i in range(len(batches)) for v in batches[i][1]])
            batches.on_epoch_end()
        return orders

    orders = epoch_orders(7)
    assert all(sorted(order) == list(range(12)) for order in orders)
    assert orders[0] != orders[1] != orders[2]
    assert orders == epoch_orders(7)
    assert orders != epoch_orders(8)


def test_augmentation_changes_train_batches_but_val_batches_stay_untouched():
    images = lesion_images(8)
    labels = np.zeros(8, int)
    train = ImageBatches(
        images, labels, batch_size=8, augmentation=Augmentation.from_config(AUGMENT), seed=3
    )
    val = ImageBatches(images, labels, batch_size=8)

    augmented = train[0][0]
    unaugmented = images / np.float32(255)
    per_image_change = np.abs(augmented - unaugmented).mean(axis=(1, 2, 3))
    assert (per_image_change > 1e-3).all()
    assert augmented.dtype == np.float32 and 0.0 <= augmented.min() and augmented.max() <= 1.0
    # Seeded by (seed, epoch, batch): the same batch again is the same view, a new epoch not.
    np.testing.assert_array_equal(train[0][0], augmented)
    train.on_epoch_end()
    assert not np.array_equal(train[0][0], augmented)

    first = val[0][0]
    val.on_epoch_end()
    np.testing.assert_array_equal(first, unaugmented)
    np.testing.assert_array_equal(val[0][0], first)


def test_augmentation_with_zero_ranges_leaves_images_as_they_are():
    zero = Augmentation.from_config({key: 0 for key in AUGMENT} | {"horizontal_flip": False})
    images = lesion_images(4)
    batches = ImageBatches(images, np.zeros(4, int), batch_size=4, augmentation=zero)
    np.testing.assert_array_equal(batches[0][0], rescale(images))


def test_consistent_views_pair_each_warped_image_with_the_teachers_logits_for_it():
    images = lesion_images(12)
    labels = np.arange(12) % 2
    plain_logits = np.zeros((12, 2), np.float32)
    zero, no_flip = np.zeros(12), np.zeros(12, bool)
    flip = compose_transforms(zero, zero, ~no_flip, zero, zero)
    quarter = compose_transforms(np.full(12, 90.0), zero, no_flip, zero, zero)
    # View k of image i has logits (k, i): the target names the view that was shown.
    view_logits = np.stack([np.stack([np.full(12, k), np.arange(12)], 1) for k in (1, 2)])
    views = TeacherViews(np.stack([flip, quarter]), view_logits.astype(np.float32))
    batches = ImageBatches(images, labels, batch_size=12, teacher_logits=plain_logits,
                           views=views, shuffle=True, seed=4)  # fmt: skip
    seen = set()
    for _ in range(4):
        shown, targets = batches[0]
        order = batches.batch_indices(0)
        for row, image in enumerate(order):
            view, logits = int(targets[row, 1]), targets[row, 1:]
            expected = {0: images[image], 1: images[image][:, ::-1],
                        2: warp_images(images[image : image + 1], quarter[:1])[0]}[view]  # fmt: skip
            np.testing.assert_array_equal(shown[row], rescale(expected))
            if view:
                assert logits[1] == image
            seen.add(view)
        batches.on_epoch_end()
    assert seen == {0, 1, 2}


def test_teacher_views_must_match_in_count_and_shape():
    with pytest.raises(DataError, match="K >= 1 views"):
        TeacherViews(np.zeros((2, 5, 2, 3), np.float32), np.zeros((2, 4, 2), np.float32))
    views = TeacherViews(np.zeros((1, 5, 2, 3), np.float32), np.zeros((1, 5, 2), np.float32))
    with pytest.raises(DataError, match="one view set per image"):
        ImageBatches(lesion_images(4), np.zeros(4, int), 4, teacher_logits=np.zeros((4, 2)),
                     views=views)  # fmt: skip


# HAM_DX order: akiec, bcc, bkl, df, mel, nv, vasc; clinical mapping.
CLINICAL = [True, True, False, False, True, False, False]


def test_seven_class_logits_collapse_to_the_summed_malignant_probability():
    logits = np.random.default_rng(0).normal(scale=3.0, size=(20, 7))
    probs = softmax(logits)
    p_malignant = probs[:, np.array(CLINICAL)].sum(axis=1)
    collapsed = binary_logits(logits, CLINICAL)
    np.testing.assert_allclose(softmax(collapsed)[:, 1], p_malignant, rtol=1e-12)
    layer = MalignantLogits(CLINICAL)
    from_layer = keras.ops.convert_to_numpy(layer(logits.astype(np.float32)))
    np.testing.assert_allclose(softmax(from_layer.astype(np.float64))[:, 1], p_malignant,
                               rtol=1e-5)  # fmt: skip
    two = np.random.default_rng(1).normal(size=(5, 2))
    np.testing.assert_array_equal(binary_logits(two, [False, True]), two)


def test_malignant_auc_sums_the_malignant_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 200)
    logits = rng.normal(size=(200, 7)).astype(np.float32)
    logits[np.arange(200), labels] += 2.0
    metric = MalignantAUC(CLINICAL, num_thresholds=2000)
    metric.update_state(labels, logits)
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(np.array(CLINICAL)[labels], softmax(logits.astype(float))[:, np.array(CLINICAL)].sum(1))
    assert abs(float(metric.result()) - expected) < 2e-3


def test_seven_class_student_saves_with_benign_malignant_outputs(tmp_path):
    images = lesion_images(24)
    dx = np.arange(24) % 7
    teacher = np.random.default_rng(2).normal(size=(24, 7)).astype(np.float32)
    saved = train_student(
        images[:16], dx[:16], teacher[:16], images[16:], dx[16:], teacher[16:],
        out_model=tmp_path / "student.keras", out_history=tmp_path / "history.csv",
        batch_size=8, epochs=1, malignant=CLINICAL, augment=AUGMENT, seed=0,
    )  # fmt: skip
    loaded = keras.saving.load_model(tmp_path / "student.keras")
    assert loaded.output_shape == (None, 2)
    assert loaded.count_params() == 163_527
    seven = keras.Model(loaded.input, loaded.get_layer("logits").output)
    x = rescale(images[:4])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)),
        binary_logits(keras.ops.convert_to_numpy(seven(x)), CLINICAL), rtol=1e-4, atol=1e-5,
    )
    assert saved.output_shape == (None, 2)
    assert with_binary_output(build_student(32), [False, True]).output_shape == (None, 2)


def test_feature_batches_yield_float32_dicts_named_after_backbones():
    features = {
        "tiny_cnn": np.ones((5, 2, 2, 3), np.float16),
        "tiny_vit": np.arange(20, dtype=np.float16).reshape(5, 4),
    }
    batches = FeatureBatches(features, np.array([0, 1, 1, 0, 1]), batch_size=3)
    x, y = batches[1]
    assert set(x) == {"tiny_cnn", "tiny_vit"}
    assert x["tiny_cnn"].shape == (2, 2, 2, 3) and x["tiny_vit"].dtype == np.float32
    np.testing.assert_array_equal(x["tiny_vit"], features["tiny_vit"][3:5].astype(np.float32))
    assert list(y) == [0, 1]
    with pytest.raises(DataError, match="do not all match"):
        FeatureBatches(features, np.zeros(4), batch_size=3)


def test_make_optimizer_names_and_learning_rate():
    for name, cls in [
        ("adam", keras.optimizers.Adam),
        ("nadam", keras.optimizers.Nadam),
        ("rmsprop", keras.optimizers.RMSprop),
        ("adafactor", Adafactor),
    ]:
        optimizer = make_optimizer(name, 0.002)
        assert isinstance(optimizer, cls)
        assert float(optimizer.learning_rate) == pytest.approx(0.002)
    with pytest.raises(ConfigError, match="'sgd' is not one of"):
        make_optimizer("sgd", 0.1)


def test_adafactor_stays_finite_where_a_gradient_row_and_column_are_zero():
    # Factored second moment of entry (0, 0): (r0 / mean(r)) * c0 = (1e-30 / 0.25) * 1e-30,
    # below float32's range: Keras' own Adafactor divides 0 by 0 there.
    gradient = np.array([[0.0, 0.0], [0.0, 1.0]], np.float32)
    weights = keras.Variable(np.full((2, 2), 0.5, np.float32))
    Adafactor(learning_rate=0.01).apply_gradients([(gradient, weights)])
    updated = keras.ops.convert_to_numpy(weights)
    assert np.isfinite(updated).all()
    np.testing.assert_array_equal(updated[0], [0.5, 0.5])  # no gradient: no change
    assert updated[1, 1] < 0.5


def test_adafactor_equals_keras_adafactor_on_ordinary_gradients():
    gradient = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    ours = keras.Variable(np.ones((3, 4), np.float32))
    stock = keras.Variable(np.ones((3, 4), np.float32))
    Adafactor(learning_rate=0.01).apply_gradients([(gradient, ours)])
    keras.optimizers.Adafactor(learning_rate=0.01).apply_gradients([(gradient, stock)])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(stock)
    )


@pytest.mark.parametrize("monitor", ["val_loss", "val_auc"])
def test_fit_restores_and_saves_the_best_validation_epoch(tmp_path, monitor):
    # Validation labels are the training labels flipped: the better the fit to the training
    # split, the worse the validation loss and AUC: an early epoch is best, the last worst.
    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    keras.utils.set_random_seed(0)
    inputs = {"features": keras.Input((4,), name="features")}
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs["features"]))
    train = FeatureBatches({"features": features}, labels, batch_size=16, shuffle=True)
    val = FeatureBatches({"features": features}, 1 - labels, batch_size=16)

    saved = fit_classifier(
        model,
        train,
        val,
        make_optimizer("adafactor", 0.05),
        6,
        tmp_path / "head.keras",
        tmp_path / "history.csv",
        monitor,
        snapshots={2: tmp_path / "epoch_2.keras", 6: tmp_path / "epoch_6.keras"},
    )

    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns) == [
        "epoch",
        "loss",
        "accuracy",
        "auc",
        "val_loss",
        "val_accuracy",
        "val_auc",
        "best",
    ]
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    best = history["val_loss"].idxmin() if monitor == "val_loss" else history["val_auc"].idxmax()
    assert history["val_loss"].iloc[-1] > history["val_loss"].iloc[best] + 0.1
    assert list(history["best"]) == [i == best for i in range(6)]
    # Saved uncompiled: loading needs neither skinkd's Adafactor nor its metric classes.
    loaded = keras.saving.load_model(tmp_path / "head.keras")
    assert not loaded.compiled
    logits = keras.ops.convert_to_numpy(loaded({"features": features})).astype(np.float64)
    val_ce = -np.log(softmax(logits)[np.arange(64), 1 - labels]).mean()
    assert val_ce == pytest.approx(history["val_loss"].iloc[best], rel=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(saved({"features": features})), logits, rtol=1e-6
    )
    # A snapshot is what training that many epochs would have kept: the best so far.
    first_two = history.iloc[:2]
    best_of_two = first_two["val_loss"].idxmin() if monitor == "val_loss" else first_two["val_auc"].idxmax()
    for path, epoch in ((tmp_path / "epoch_2.keras", best_of_two), (tmp_path / "epoch_6.keras", best)):
        snapshot = keras.saving.load_model(path)
        snap_logits = keras.ops.convert_to_numpy(snapshot({"features": features})).astype(np.float64)
        snap_ce = -np.log(softmax(snap_logits)[np.arange(64), 1 - labels]).mean()
        assert snap_ce == pytest.approx(history["val_loss"].iloc[epoch], rel=1e-5)


def test_fit_rejects_an_unknown_monitor(tmp_path):
    model = build_student(32)
    batches = ImageBatches(lesion_images(4), np.zeros(4, int), batch_size=4)
    with pytest.raises(ConfigError, match="'val_acc' is not one of"):
        fit_classifier(
            model,
            batches,
            batches,
            keras.optimizers.Adam(),
            1,
            tmp_path / "m.keras",
            tmp_path / "h.csv",
            monitor="val_acc",
        )


def test_two_seeded_student_runs_give_the_same_history_and_save_the_student(tmp_path):
    images = lesion_images(40)
    labels = np.arange(40) % 2
    teacher = np.random.default_rng(2).normal(size=(40, 2)).astype(np.float32)

    def run(folder: str) -> keras.Model:
        return train_student(
            images[:32],
            labels[:32],
            teacher[:32],
            images[32:],
            labels[32:],
            teacher[32:],
            out_model=tmp_path / folder / "student.keras",
            out_history=tmp_path / folder / "history.csv",
            batch_size=16,
            epochs=2,
            temperature=2.0,
            alpha=0.5,
            augment=AUGMENT,
            seed=5,
        )

    first, second = run("a"), run("b")
    assert (tmp_path / "a/history.csv").read_text() == (tmp_path / "b/history.csv").read_text()
    for w1, w2 in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(w1, w2)

    loaded = keras.saving.load_model(tmp_path / "a/student.keras")
    assert loaded.count_params() == 163_362
    assert loaded.input_shape == (None, 32, 32, 3)
    assert all(np.isfinite(w).all() for w in loaded.get_weights())
    val = rescale(images[32:])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(val)), keras.ops.convert_to_numpy(first(val)), rtol=1e-6
    )


# One training step of the Distiller on fixed inputs from fixed initial weights; prints the
# losses as JSON.
BACKEND_STEP = textwrap.dedent("""
    import json, sys
    import keras
    import numpy as np
    from skinkd.student.network import build_student
    from skinkd.data.preprocess import rescale
    from skinkd.student.distill import Distiller
    from skinkd.nn.fit import make_optimizer
    from skinkd.nn.batches import pack_targets

    rng = np.random.default_rng(0)
    images = rescale(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    targets = pack_targets(np.arange(8) % 2, rng.normal(size=(8, 2)))
    student = build_student(32)
    stored = np.load(sys.argv[1])
    student.set_weights([stored[f"w{i}"] for i in range(len(stored.files))])
    distiller = Distiller(student, temperature=2.0, alpha=0.3)
    distiller.compile(optimizer=make_optimizer("adafactor", 0.002))

    def loss():
        return float(distiller.compute_loss(y=targets, y_pred=distiller(images)))

    before = loss()
    step = float(distiller.train_on_batch(images, targets))
    print(json.dumps({"backend": keras.backend.backend(), "before": before, "step": step,
                      "after": loss()}))
    """)


def test_distillation_step_on_torch_matches_tensorflow(tmp_path):
    script = tmp_path / "backend_step.py"
    script.write_text(BACKEND_STEP)
    weights = tmp_path / "initial_weights.npz"
    keras.utils.set_random_seed(0)
    np.savez(weights, **{f"w{i}": w for i, w in enumerate(build_student(32).get_weights())})
    # Both backends at once: each subprocess spends most of its time importing.
    runs = {
        backend: subprocess.Popen(
            [sys.executable, str(script), str(weights)],
            cwd=PROJECT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        for backend in ("tensorflow", "torch")
    }
    losses = {}
    for backend, run in runs.items():
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr[-3000:]
        losses[backend] = json.loads(stdout.strip().splitlines()[-1])
        assert losses[backend]["backend"] == backend
    print(json.dumps(losses))
    tensorflow, torch = losses["tensorflow"], losses["torch"]
    for key in ("before", "step", "after"):
        assert np.isfinite(torch[key])
        assert abs(torch[key] - tensorflow[key]) < 1e-5, key
    assert tensorflow["after"] < tensorflow["before"]  # the step trained the student


RESUME_SCRIPT = textwrap.dedent("""
    import logging
    import sys
    from pathlib import Path

    import keras
    import numpy as np

    from skinkd.checkpoint import Checkpoint
    from skinkd.student.train import train_student

    logging.basicConfig(level=logging.INFO)
    out, mode = Path(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (96, 24, 24, 3), dtype=np.uint8)
    labels = (images[:, :12].mean(axis=(1, 2, 3)) > 127).astype(int)
    teacher = np.stack([-labels * 2.0, labels * 2.0], axis=1).astype(np.float32)
    checkpoint = None if mode == "plain" else Checkpoint(out / "checkpoint", "run-key")
    train_student(
        images[:64], labels[:64], teacher[:64], images[64:], labels[64:], teacher[64:],
        out_model=out / "student.keras", out_history=out / "history.csv", optimizer="adam",
        learning_rate=0.01, batch_size=16, epochs=6, temperature=2.0, alpha=0.5,
        augment={"rotation": 20, "height_shift": 0.1, "width_shift": 0.1, "shear": 0.1,
                 "horizontal_flip": True},
        seed=3, checkpoint=checkpoint,
    )
""")


def _train(out: Path, mode: str, wait_for_epoch: int | None = None) -> subprocess.CompletedProcess | None:
    """Run the script; with ``wait_for_epoch``, SIGKILL it once that epoch is checkpointed."""
    out.mkdir(exist_ok=True)
    script = out.parent / "resume_script.py"
    script.write_text(RESUME_SCRIPT)
    command = [sys.executable, str(script), str(out), mode]
    if wait_for_epoch is None:
        return subprocess.run(command, capture_output=True, text=True, check=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoint" / "state.npz"
    while process.poll() is None:
        if state.is_file():
            with np.load(state) as data:
                if json.loads(str(data["meta"]))["epoch"] >= wait_for_epoch:
                    process.kill()
                    break
    process.wait()
    assert process.returncode == -9, "the run ended before it could be killed"
    return None


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> tuple[Path, str, Path]:
    """An uninterrupted run; a run SIGKILLed after epoch 3, its checkpoint kept aside, then
    run again to the end. Returns (folder, the rerun's log, the kept checkpoint)."""
    root = tmp_path_factory.mktemp("resume")
    _train(root / "plain", "plain")
    _train(root / "killed", "checkpoint", wait_for_epoch=3)
    assert not (root / "killed" / "student.keras").exists()
    kept = root / "kept_state.npz"
    kept.write_bytes((root / "killed" / "checkpoint" / "state.npz").read_bytes())
    return root, _train(root / "killed", "checkpoint").stderr, kept


def test_a_killed_training_resumes_and_ends_with_the_weights_of_an_uninterrupted_one(killed_run):
    root, log, _ = killed_run
    assert "resuming from the checkpoint of epoch 3" in log
    plain = keras.models.load_model(root / "plain" / "student.keras")
    again = keras.models.load_model(root / "killed" / "student.keras")
    for a, b in zip(plain.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    history = pd.read_csv(root / "killed" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    pd.testing.assert_frame_equal(history, pd.read_csv(root / "plain" / "history.csv"))
    # A finished fit removes its checkpoint and the folder it made.
    assert not (root / "killed" / "checkpoint").exists()


def test_a_checkpoint_of_another_run_is_ignored_with_a_log_line(killed_run, tmp_path, caplog):
    from skinkd.checkpoint import Checkpoint
    from skinkd.nn.fit import _resume

    model = build_student(24)
    model.compile(optimizer="adam", loss="mse")
    checkpoint = Checkpoint(tmp_path, "another-run")
    checkpoint.path.write_bytes(killed_run[2].read_bytes())
    before = [w.copy() for w in model.get_weights()]
    with caplog.at_level("INFO", logger="skinkd.nn.fit"):
        assert _resume(model, checkpoint) is None
    assert "is of another run (key run-key, not another-run): starting afresh" in caplog.text
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_job_checkpoint_lives_beside_the_output_and_its_key_follows_what_determines_the_run(tmp_path):
    import os
    import time

    from skinkd.checkpoint import job_checkpoint

    inputs = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in inputs:
        path.write_bytes(b"x")
    output = tmp_path / "results" / "student" / "student.keras"

    def key(**changes):
        args = {"rule": "ablation_cell", "output": output, "wildcards": {"cell": "baseline", "seed": "1"},
                "params": {"epochs": 10}, "inputs": inputs} | changes  # fmt: skip
        return job_checkpoint(**args)

    first = key()
    assert first.folder == tmp_path / "results/student/.checkpoints/ablation_cell-baseline-1"
    assert key().key == first.key
    assert key(params={"epochs": 11}).key != first.key
    assert key(wildcards={"cell": "baseline", "seed": "2"}).key != first.key
    # New times on the same content (data copied again, then touched) keep the key.
    os.utime(inputs[0], (time.time() + 60, time.time() + 60))
    assert key().key == first.key
    inputs[1].write_bytes(b"y")
    assert key().key != first.key
    first.folder.mkdir(parents=True)
    first.path.write_bytes(b"state")
    first.remove()
    assert not (tmp_path / "results/student/.checkpoints").exists()
    assert output.parent.is_dir()


def test_a_large_zip_input_is_fingerprinted_by_its_edges_and_still_sees_a_changed_member(tmp_path, monkeypatch):
    import skinkd.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "WHOLE_HASH_BYTES", 10_000)
    monkeypatch.setattr(checkpoint, "EDGE_BYTES", 1000)
    rng = np.random.default_rng(0)
    big = {"a": rng.random(2000), "b": rng.random(2000), "c": rng.random(2000)}
    path = tmp_path / "cache.npz"
    np.savez(path, **big)
    first = checkpoint.content_fingerprint(path)
    # One value of the middle member (48 kB in all): outside both edges of 1 kB, inside its
    # CRC-32 in the central directory at the end.
    big["b"][1000] += 1.0
    np.savez(path, **big)
    assert checkpoint.content_fingerprint(path) != first
    big["b"][1000] -= 1.0
    np.savez(path, **big)
    assert checkpoint.content_fingerprint(path) == first
    # A large file that is not a zip is hashed whole.
    plain = tmp_path / "plain.bin"
    data = bytearray(50_000)
    plain.write_bytes(bytes(data))
    before = checkpoint.content_fingerprint(plain)
    data[25_000] = 1
    plain.write_bytes(bytes(data))
    assert checkpoint.content_fingerprint(plain) != before
    assert checkpoint.content_fingerprint(tmp_path) == "folder"



def test_warmup_schedule_rises_linearly_then_holds_or_follows_a_cosine():
    constant = WarmupSchedule(0.1, "constant", warmup_steps=10, total_steps=100)
    cosine = WarmupSchedule(0.1, "cosine", warmup_steps=10, total_steps=110)
    rate = lambda schedule, step: float(schedule(step))  # noqa: E731
    assert rate(constant, 0) == pytest.approx(0.01) and rate(constant, 4) == pytest.approx(0.05)
    assert rate(constant, 9) == pytest.approx(0.1) and rate(constant, 500) == pytest.approx(0.1)
    assert rate(cosine, 4) == pytest.approx(0.05)
    for step in (10, 35, 60, 110):
        expected = 0.05 * (1 + math.cos(math.pi * (step - 10) / 100))
        assert rate(cosine, step) == pytest.approx(expected, abs=1e-7)
    assert rate(cosine, 1000) == pytest.approx(0.0, abs=1e-9)
    assert rate(WarmupSchedule(0.1, "cosine", 0, 10), 0) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="schedule: 'linear'"):
        WarmupSchedule(0.1, "linear", 0, 10)


def test_smoothed_crossentropy_matches_its_definition():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]], np.float32)
    labels = np.array([0, 2])
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    target = np.full((2, 3), 0.1 / 3)
    target[[0, 1], labels] += 0.9
    expected = -(target * log_probs).sum(axis=1).mean()
    assert float(SmoothedSparseCrossentropy(0.1)(labels, logits)) == pytest.approx(expected, rel=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(SmoothedSparseCrossentropy(0.0)(labels, logits)) == pytest.approx(float(plain), rel=1e-6)


def test_weight_decay_shrinks_weights_by_rate_times_decay_each_step():
    weight = keras.Variable(np.ones(3, np.float32))
    optimizer = make_optimizer("adam", 0.1, weight_decay=0.5)
    optimizer.apply_gradients([(np.zeros(3, np.float32), weight)])
    np.testing.assert_allclose(np.asarray(weight), 1 - 0.1 * 0.5, rtol=1e-6)
    plain = keras.Variable(np.ones(3, np.float32))
    make_optimizer("adam", 0.1).apply_gradients([(np.zeros(3, np.float32), plain)])
    np.testing.assert_allclose(np.asarray(plain), 1.0)
