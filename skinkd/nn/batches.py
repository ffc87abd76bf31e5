"""Feeding Keras from numpy: batches of cached images or cached features, in a seeded order
that a resumed fit can replay.

Batches that carry the teacher's logits hold one float32 target array per batch, shape
(batch, 1 + C): column 0 the hard label (a class index), then the teacher's C logits
(``pack_targets``); a single array keeps every backend's data pipeline simple. The
student's ``Distiller`` reads that layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from skinkd.data.augment import Augmentation, draw_transforms, warp_images
from skinkd.data.photometric import Photometric, photometric_batch
from skinkd.data.preprocess import rescale
from skinkd.errors import DataError


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """The Distiller's targets: float32 (n, 1 + C) = [label, the teacher's C logits]."""
    labels = np.asarray(labels)
    teacher_logits = np.asarray(teacher_logits)
    if teacher_logits.ndim != 2 or len(teacher_logits) != len(labels):
        raise DataError(
            f"teacher logits have shape {teacher_logits.shape}, expected ({len(labels)}, C) "
            "(one row of logits per image)"
        )
    return np.concatenate([labels[:, None], teacher_logits], axis=1).astype(np.float32)


@dataclass(frozen=True)
class TeacherViews:
    """The teacher's logits for K augmented views of each training image, and the views
    (``skinkd.data.augment`` transforms, resolution-free): consistent distillation's targets."""

    transforms: np.ndarray  # (K, n, 2, 3)
    logits: np.ndarray  # (K, n, C)

    def __post_init__(self) -> None:
        k, n = self.transforms.shape[:2]
        if self.transforms.shape[2:] != (2, 3) or self.logits.shape[:2] != (k, n) or k == 0:
            raise DataError(
                f"teacher views: transforms {self.transforms.shape} and logits "
                f"{self.logits.shape} do not describe K >= 1 views of the same images"
            )


class _Batches(keras.utils.PyDataset):
    """Batch order over n items: fixed, or a new seeded permutation every epoch."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, **kwargs: Any):
        super().__init__(**kwargs)
        if n == 0:
            raise DataError("nothing to feed: the split is empty")
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def on_epoch_end(self) -> None:
        self.start_at(self.epoch + 1)

    def start_at(self, epoch: int) -> None:
        """Feed epoch ``epoch`` next (a resumed fit skips the epochs it has done)."""
        self.epoch = epoch
        self.order = self._epoch_order()

    def batch_indices(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]


class ImageBatches(_Batches):
    """Batches of float32 [0, 1] images from the uint8 cache, with labels or Distiller targets.

    Yields (images, labels int32) or, given teacher logits, (images, ``pack_targets``).
    Training batches are augmented in one of two ways. ``augmentation``: a fresh random view
    of each image, its targets unchanged (the teacher's logits are those of the plain
    image). ``views`` (consistent distillation): each image is shown as the plain image or
    one of the teacher's K cached views, chosen at random, with the teacher's logits for
    exactly that view. Either way ``photometric`` then changes each image's light, exposure
    and focus at random (``skinkd.data.photometric``; the targets stay). Every choice is
    seeded by (seed, epoch, batch).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        teacher_logits: np.ndarray | None = None,
        augmentation: Augmentation | None = None,
        views: TeacherViews | None = None,
        photometric: Photometric | None = None,
        shuffle: bool = False,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(len(images), batch_size, shuffle, seed, **kwargs)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(
                f"expected uint8 images (n, S, S, 3), got {images.dtype} {images.shape}"
            )
        if len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if views is not None and (teacher_logits is None or views.transforms.shape[1] != len(images)):
            raise DataError("teacher views need teacher logits and one view set per image")
        self.images = images
        self.augmentation = None if augmentation is None or augmentation.is_identity else augmentation
        self.views = views
        self.photometric = None if photometric is None or photometric.is_identity else photometric
        if teacher_logits is None:
            self.targets = np.asarray(labels, dtype=np.int32)
        else:
            self.targets = pack_targets(labels, teacher_logits)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        take = self.batch_indices(index)
        images, targets = self.images[take], self.targets[take]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.views is not None:
            # View 0 is the plain image with its stored logits; 1..K the teacher's views.
            view = rng.integers(0, len(self.views.logits) + 1, len(take))
            shown = view > 0
            if shown.any():
                chosen = (view[shown] - 1, take[shown])
                images = images.copy()
                images[shown] = warp_images(images[shown], self.views.transforms[chosen])
                targets = targets.copy()
                targets[shown, 1:] = self.views.logits[chosen]
        elif self.augmentation is not None:
            images = warp_images(images, draw_transforms(self.augmentation, len(take), rng))
        if self.photometric is not None:
            # A stream of its own: switching it on leaves the geometric draws as they were.
            light = np.random.default_rng([self.seed, self.epoch, index, 1])
            images = photometric_batch(images, self.photometric, light)
        return rescale(images), targets


class FeatureBatches(_Batches):
    """Batches of cached backbone features (dict name -> (n, ...)) as float32, with labels.

    For the teacher head, whose inputs are named after the backbones.
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        labels: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        **kwargs: Any,
    ):
        sizes = {name: len(array) for name, array in features.items()}
        if set(sizes.values()) != {len(labels)}:
            raise DataError(f"feature rows {sizes} do not all match {len(labels)} labels")
        super().__init__(len(labels), batch_size, shuffle, seed, **kwargs)
        self.features = dict(features)
        self.labels = np.asarray(labels, dtype=np.int32)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        take = self.batch_indices(index)
        batch = {name: array[take].astype(np.float32) for name, array in self.features.items()}
        return batch, self.labels[take]
