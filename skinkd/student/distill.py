"""Distillation: the loss and the ``Distiller``, a ``keras.Model`` that trains a student on
hard labels and the teacher's stored logits (targets laid out by
``skinkd.nn.batches.pack_targets``)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from skinkd.errors import DataError


def distillation_loss(labels, student_logits, teacher_logits, temperature: float, alpha: float):
    """alpha * CE(labels, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)).

    Per-image losses averaged over the batch. The T^2 factor keeps the soft term's gradients
    on the scale of the hard term's when T changes (Hinton et al. 2015). Log-softmax
    throughout, so saturated teacher probabilities give 0 * finite, never 0 * log 0.
    """
    student_logits = ops.convert_to_tensor(student_logits)
    teacher_logits = ops.cast(teacher_logits, student_logits.dtype)
    num_classes = ops.shape(student_logits)[-1]
    one_hot = ops.one_hot(
        ops.cast(ops.reshape(labels, (-1,)), "int32"), num_classes, dtype=student_logits.dtype
    )
    hard = -ops.sum(one_hot * ops.log_softmax(student_logits, axis=-1), axis=-1)
    teacher_log_probs = ops.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_probs = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
    return ops.mean(alpha * hard + (1.0 - alpha) * temperature**2 * kl)


class Distiller(keras.Model):
    """Trains a student (logits) on hard labels and stored teacher logits.

    ``call`` is the student; targets are ``pack_targets`` arrays (batch, 3). The teacher is
    not part of the model: its logits were computed once and travel with the batches.
    Validation uses the same loss (val targets carry teacher logits too); metrics see only
    the hard labels. Sample weights are not used. Save ``distiller.student``, not the
    Distiller.
    """

    def __init__(self, student: keras.Model, temperature: float, alpha: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.student = student
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y.shape[-1] != 1 + y_pred.shape[-1]:
            raise DataError(
                f"Distiller targets must be (batch, {1 + y_pred.shape[-1]}) [label, teacher "
                f"logits], got {y.shape}"
            )
        return distillation_loss(y[:, 0], y_pred, y[:, 1:], self.temperature, self.alpha)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y[:, 0], y_pred, sample_weight)
