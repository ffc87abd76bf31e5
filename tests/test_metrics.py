"""Evaluation metrics, bootstrap intervals and agreement, against hand counts and scikit-learn."""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction

import numpy as np
import pytest
from sklearn import metrics as sk

from skinkd.data.classes import malignant_probability
from skinkd.errors import DataError
from skinkd.evaluate.evaluation import headline_table, metrics_table
from skinkd.evaluate.external import evaluate_external
from skinkd.evaluate.metrics import (
    RATE_METRICS,
    agreement,
    bootstrap_intervals,
    classification_metrics,
    evaluate_model,
    evaluate_probabilities,
    roc_auc,
    roc_curve,
    write_evaluation,
)

# Ten images: 4 malignant (3 caught, 1 missed), 6 benign (2 false alarms, 4 correct).
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
PROBS = np.array([0.9, 0.8, 0.5, 0.2, 0.7, 0.6, 0.4, 0.3, 0.1, 0.0])


def scored_sample(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and informative, tied (two-decimal) malignant probabilities."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    prob = np.clip(0.35 * labels + 0.65 * rng.random(n), 0, 1).round(2)
    return labels, prob


def test_confusion_counts_match_hand_count_and_threshold_is_inclusive():
    m = classification_metrics(LABELS, PROBS, threshold=0.5)
    # 0.5 itself counts as malignant: tp = 0.9, 0.8, 0.5.
    assert (m["tp"], m["fn"], m["fp"], m["tn"], m["n"]) == (3, 1, 2, 4, 10)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    assert m["mcc"] == pytest.approx((3 * 4 - 2 * 1) / math.sqrt(5 * 4 * 6 * 5))


def test_weighted_precision_recall_f1_equal_hand_computation():
    m = classification_metrics(LABELS, PROBS, threshold=0.5)
    # Per class (benign weight 6, malignant weight 4) with tp=3, fn=1, fp=2, tn=4.
    precision = (6 * Fraction(4, 5) + 4 * Fraction(3, 5)) / 10
    recall = (6 * Fraction(4, 6) + 4 * Fraction(3, 4)) / 10
    f1 = (6 * Fraction(8, 11) + 4 * Fraction(6, 9)) / 10
    assert m["weighted_precision"] == pytest.approx(float(precision))  # 0.72
    assert m["weighted_recall"] == pytest.approx(float(recall))  # 0.70 = accuracy
    assert m["weighted_f1"] == pytest.approx(float(f1))


def test_auc_counts_tied_pairs_as_half():
    labels = np.array([1, 1, 1, 0, 0])
    prob = np.array([0.9, 0.6, 0.4, 0.6, 0.3])
    # Pairs (pos, neg): 0.9 beats both, 0.6 ties 0.6 and beats 0.3, 0.4 loses and wins: 4.5 / 6.
    assert roc_auc(labels, prob) == pytest.approx(4.5 / 6)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
def test_metrics_agree_with_scikit_learn(threshold):
    labels, prob = scored_sample()
    predicted = (prob >= threshold).astype(int)
    m = classification_metrics(labels, prob, threshold)
    tn, fp, fn, tp = sk.confusion_matrix(labels, predicted).ravel()
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (tn, fp, fn, tp)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert m["weighted_precision"] == pytest.approx(
        sk.precision_score(labels, predicted, average="weighted")
    )
    assert m["weighted_recall"] == pytest.approx(
        sk.recall_score(labels, predicted, average="weighted")
    )
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="weighted"))
    assert m["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, predicted))
    assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, prob))
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(labels, predicted))
    assert m["sensitivity"] == pytest.approx(sk.recall_score(labels, predicted, pos_label=1))
    assert m["specificity"] == pytest.approx(sk.recall_score(labels, predicted, pos_label=0))


def test_roc_curve_equals_scikit_learn_points_and_brute_force_auc():
    labels, prob = scored_sample(200, seed=3)
    fpr, tpr = roc_curve(labels, prob)
    sk_fpr, sk_tpr, _ = sk.roc_curve(labels, prob, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    pos, neg = prob[labels == 1], prob[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(labels, prob) == pytest.approx(wins / (len(pos) * len(neg)))


def test_perfect_predictions_score_one_everywhere():
    labels, _ = scored_sample(50)
    m = classification_metrics(labels, labels.astype(float))
    for name in RATE_METRICS:
        assert m[name] == pytest.approx(1.0), name
    assert m["fp"] == m["fn"] == 0


def test_inverted_predictions_score_zero_and_mcc_minus_one():
    labels, _ = scored_sample(50)
    m = classification_metrics(labels, 1.0 - labels)
    assert m["accuracy"] == m["sensitivity"] == m["specificity"] == m["roc_auc"] == 0
    assert m["mcc"] == pytest.approx(-1.0)
    assert m["tp"] == m["tn"] == 0


def test_single_class_sample_gives_nan_where_undefined():
    m = classification_metrics(np.zeros(4, int), np.array([0.1, 0.2, 0.7, 0.3]))
    assert m["specificity"] == pytest.approx(0.75)
    assert math.isnan(m["sensitivity"]) and math.isnan(m["roc_auc"])
    assert m["mcc"] == 0  # scikit-learn's convention for an undefined MCC


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="equal length"):
        classification_metrics(np.array([0, 1]), np.array([0.5]))
    with pytest.raises(ValueError, match="0 \\(benign\\) or 1"):
        classification_metrics(np.array([0, 2]), np.array([0.1, 0.9]))
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        classification_metrics(np.array([0, 1]), np.array([0.1, 1.5]))


def test_malignant_probability_is_softmax_of_index_one():
    logits = np.array([[0.0, 0.0], [1.0, 3.0], [800.0, -800.0], [-5.0, 2.0]])
    expected = 1 / (1 + np.exp(np.clip(logits[:, 0] - logits[:, 1], -700, 700)))
    np.testing.assert_allclose(malignant_probability(logits), expected, rtol=1e-12, atol=1e-15)
    assert np.isfinite(malignant_probability(logits)).all()


def test_bootstrap_is_deterministic_for_a_seed_and_changes_with_it():
    labels, prob = scored_sample()
    first = bootstrap_intervals(labels, prob, 0.5, n_boot=200, seed=7)
    assert first == bootstrap_intervals(labels, prob, 0.5, n_boot=200, seed=7)
    assert first != bootstrap_intervals(labels, prob, 0.5, n_boot=200, seed=8)
    assert set(first) == set(RATE_METRICS)


def test_bootstrap_intervals_contain_the_estimate_with_binomial_width():
    labels, prob = scored_sample(1000, seed=1)
    point = classification_metrics(labels, prob, 0.5)
    intervals = bootstrap_intervals(labels, prob, 0.5, n_boot=1000, seed=0)
    for name, (low, high) in intervals.items():
        assert low < point[name] < high, name
    # The accuracy interval is about the normal approximation's +-1.96 standard errors.
    acc = point["accuracy"]
    expected_width = 2 * 1.96 * math.sqrt(acc * (1 - acc) / len(labels))
    low, high = intervals["accuracy"]
    assert high - low == pytest.approx(expected_width, rel=0.15)


def test_bootstrap_redraws_one_class_resamples(caplog):
    # With one malignant image in five, a third of plain resamples hold no malignant image.
    labels = np.array([0, 0, 0, 0, 1])
    prob = np.array([0.1, 0.2, 0.3, 0.6, 0.8])
    with caplog.at_level(logging.INFO, logger="skinkd.evaluate.metrics"):
        intervals = bootstrap_intervals(labels, prob, 0.5, n_boot=300, seed=0)
    assert "one-class resample" in caplog.text
    for name, (low, high) in intervals.items():
        assert 0 <= low <= high <= 1 or name == "mcc", name
        assert math.isfinite(low) and math.isfinite(high), name
    # Every resample holds the malignant image, which is always caught.
    assert intervals["sensitivity"] == (1.0, 1.0)
    assert intervals["roc_auc"][1] == 1.0


def test_bootstrap_of_a_single_class_test_set_is_a_data_error():
    with pytest.raises(DataError, match="all 3 are benign"):
        bootstrap_intervals(np.zeros(3, int), np.array([0.1, 0.2, 0.3]), 0.5)


def test_agreement_numbers():
    a = np.array([0.10, 0.49, 0.51, 0.90, 0.70])
    b = np.array([0.12, 0.51, 0.51, 0.60, 0.70])
    result = agreement(a, b, threshold=0.5)
    # Only the second image changes label (0.49 -> 0.51).
    assert result == {
        "n": 5,
        "label_agreement": pytest.approx(4 / 5),
        "label_differences": 1,
        "max_abs_difference": pytest.approx(0.30),
        "mean_abs_difference": pytest.approx((0.02 + 0.02 + 0 + 0.30 + 0) / 5),
    }


def test_evaluate_model_writes_valid_json_and_tabulates(tmp_path):
    labels, prob = scored_sample(300, seed=2)
    # Logits whose softmax gives back the probabilities: (0, log(p / (1 - p))).
    p = np.clip(prob, 1e-6, 1 - 1e-6)
    logits = np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1)
    student = evaluate_model("student", labels, logits, threshold=0.5, n_boot=100, seed=0)
    teacher = evaluate_model("teacher", labels, logits[:, ::-1], threshold=0.5, n_boot=100, seed=0)
    assert set(student) == {"model", "threshold", "metrics", "intervals", "bootstrap"}
    assert student["metrics"]["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, p))
    assert student["bootstrap"] == {"n_boot": 100, "seed": 0, "level": 0.95}

    path = tmp_path / "eval" / "student.json"
    write_evaluation(student, path)
    assert json.loads(path.read_text())["intervals"]["mcc"] == list(student["intervals"]["mcc"])
    assert [f.name for f in path.parent.iterdir()] == ["student.json"]

    table = metrics_table([json.loads(path.read_text()), teacher])
    assert list(table["model"]) == ["student", "teacher"]
    assert list(table.columns[:3]) == ["model", "n", "threshold"]
    assert list(table.columns[-4:]) == ["tn", "fp", "fn", "tp"]
    for name in RATE_METRICS:
        assert {name, f"{name}_low", f"{name}_high"} <= set(table.columns)
    row = table.iloc[1]
    assert row["mcc"] == teacher["metrics"]["mcc"]
    assert [row["mcc_low"], row["mcc_high"]] == teacher["intervals"]["mcc"]
    assert row["tn"] + row["fp"] + row["fn"] + row["tp"] == row["n"] == 300


def test_headline_table_gives_each_models_auc_on_the_test_split_and_every_external_set():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 2
    probs = {m: np.clip(labels * shift + rng.random(60) * 0.8, 0, 1)
             for m, shift in (("student", 0.3), ("student_int8", 0.25), ("teacher", 0.5))}  # fmt: skip
    evals = {m: evaluate_probabilities(m, labels, p, 0.5, n_boot=50, seed=0) for m, p in probs.items()}
    # The external set: 40 images, of which the 20 unseen ones are all benign (no AUC).
    ext_labels, seen = np.arange(40) % 2, np.arange(40) % 2 == 1
    external = {"models": {
        m: evaluate_external(m, ext_labels, p[:40], {"validation": 0.3, "0.5": 0.5}, seen=seen,
                             n_boot=50, seed=0)
        for m, p in probs.items()
    }}  # fmt: skip

    table = headline_table(evals, {"elsewhere": external})

    assert list(table.columns) == ["data", "images", "student", "student_int8", "teacher"]
    assert list(table["data"]) == ["test split", "elsewhere", "elsewhere, unseen images"]
    assert list(table["images"]) == [60, 40, 20]
    teacher_auc = sk.roc_auc_score(labels, probs["teacher"])
    low, high = evals["teacher"]["intervals"]["roc_auc"]
    assert table.loc[0, "teacher"] == f"{teacher_auc:.3f} [{low:.3f}, {high:.3f}]"
    external_auc = sk.roc_auc_score(ext_labels, probs["student"][:40])
    assert table.loc[1, "student"].startswith(f"{external_auc:.3f} [")
    assert list(table.loc[2, ["student", "student_int8", "teacher"]]) == ["n/a"] * 3
