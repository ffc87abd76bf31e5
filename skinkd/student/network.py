"""The student: the paper's small CNN as a functional Keras model.

It returns logits (index 1 = malignant for two classes) and takes float images in [0, 1]
(``skinkd.data.preprocess.rescale``).
"""

from __future__ import annotations

import keras
from keras import layers

from skinkd.errors import ConfigError
from skinkd.nn.models import bounded_selu

FEATURE_CONVERSIONS = ("flatten", "gap", "gmp")


def _feature_conversion(name: str) -> layers.Layer:
    if name == "flatten":
        return layers.Flatten(name="flatten")
    if name == "gap":
        return layers.GlobalAveragePooling2D(name="gap")
    if name == "gmp":
        return layers.GlobalMaxPooling2D(name="gmp")
    raise ConfigError(
        f"student.feature_conversion: {name!r} is not one of {', '.join(FEATURE_CONVERSIONS)}"
    )


def build_student(image_size: int, conversion: str = "gmp", num_classes: int = 2) -> keras.Model:
    """The paper's student: three conv/max-pool blocks, a feature conversion, three SELU layers
    (``bounded_selu``: the same function, written to survive int8 quantisation).

    163,362 parameters with ``gap`` or ``gmp`` at any input size (163,527 with the seven
    HAM10000 diagnoses as outputs); ``flatten`` grows with the input size.
    """
    images = keras.Input((image_size, image_size, 3), name="image")
    x = images
    for block, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = _feature_conversion(conversion)(x)
    for units in (256, 128, 32):
        x = layers.Dense(units, activation=bounded_selu, name=f"dense{units}")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(images, logits, name=f"student_{conversion}")
