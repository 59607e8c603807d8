"""Search data: the training set of a source, split 50/50 into search-train and search-valid.

The split, the shuffling and the augmentation of every epoch are functions of `(seed, epoch)` only,
so a search resumed at epoch k sees exactly the batches an uninterrupted run sees.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from itnas_tf.data.sources import DataError, load_arrays

AUGMENTATIONS = ("auto", "crop_flip", "crop", "none")
# `auto` by source: 8x8 digits are too small to crop (search accuracy after 10 quickstart epochs fell
# from 0.80 to 0.36 with it); digits are not mirror-symmetric.
AUTO_AUGMENT = {"digits": "none", "svhn_cropped": "crop"}


def normalize(x, mean, std):
    """uint8 images -> float32 `(x / 255 - mean) / std` (per channel)."""
    return (tf.cast(x, tf.float32) / 255.0 - mean) / std


def augment_image(x, key, mode):
    """Standard CIFAR augmentation of one uint8 image, a function of the stateless `key` only: pad by
    1/8 of the side and crop back (`crop`), plus a horizontal flip (`crop_flip`)."""
    if mode in ("crop", "crop_flip"):
        p = max(1, x.shape[0] // 8)
        padded = tf.pad(x, [[p, p], [p, p], [0, 0]])
        x = tf.image.stateless_random_crop(padded, tf.shape(x), seed=key)
    if mode == "crop_flip":
        x = tf.image.stateless_random_flip_left_right(x, seed=key + 1)
    return x


def shuffled(x, y, seed, transform):
    """`(transform(image, key), label)` pairs in a seeded order; each image's key is `(seed, index)`,
    so an epoch's batches depend on nothing but `seed`."""
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.arange(len(x))))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=False)
    fn = lambda x, y, i: (transform(x, tf.stack([tf.constant(seed, tf.int64), tf.cast(i, tf.int64)])), y)
    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def prefetched(ds):
    """`ds` prefetched, without tf.data's autotuning thread: arrays in memory gain nothing from it, and
    `fit` and `predict` return only once it has stopped, which took 0.17-0.30 s after 2 to 5 of the
    quickstart's 10 epochs (docs/performance.md). The batches are the same either way."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def auto_augment(name, augment):
    return AUTO_AUGMENT.get(name, "crop_flip") if augment == "auto" else augment


def split_indices(n, seed):
    """A seeded 50/50 split of `range(n)` into disjoint train and valid index arrays."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def batched(ds, batch_size, min_batch=1):
    """`ds` in batches; a final batch of fewer than `min_batch` images is left out."""
    ds = ds.batch(batch_size)
    if min_batch > 1:
        ds = ds.filter(lambda x, y: tf.shape(x)[0] >= min_batch)
    return ds


@dataclasses.dataclass
class SearchData:
    """The two halves of a source's training set, as `tf.data` pipelines per epoch.

    `train(epoch)`: search-train, shuffled and augmented (standard CIFAR augmentation: pad by 1/8
    of the side, random crop, horizontal flip). `arch(epoch)`: search-valid shuffled, for the DARTS
    strategy's architecture steps. `valid`: search-valid in order, for the selection pass.

    `min_batch`: a final batch with fewer images is left out. A run on R replicas sets it to R, since
    a replica given no image fails (TensorFlow's CPU convolutions refuse an empty batch).
    """

    x: np.ndarray
    y: np.ndarray
    train_idx: np.ndarray
    valid_idx: np.ndarray
    batch_size: int
    seed: int
    augment: str
    mean: np.ndarray
    std: np.ndarray
    min_batch: int = 1

    def _batch(self, ds):
        return batched(ds, self.batch_size, self.min_batch)

    @property
    def num_classes(self):
        return int(self.y.max()) + 1

    @property
    def image_shape(self):
        return tuple(self.x.shape[1:])

    @property
    def train_size(self):
        return len(self.train_idx)

    @property
    def valid_size(self):
        return len(self.valid_idx)

    def _shuffled(self, idx, salt, epoch, augment):
        mode = self.augment if augment else "none"
        return shuffled(self.x[idx], self.y[idx], (self.seed * 1_000_003 + epoch) * 2 + salt,
                        lambda x, key: normalize(augment_image(x, key, mode), self.mean, self.std))

    def train(self, epoch):
        ds = self._shuffled(self.train_idx, 0, epoch, self.augment != "none")
        return prefetched(self._batch(ds))

    def arch(self, epoch):
        ds = self._shuffled(self.valid_idx, 1, epoch, augment=False)
        return prefetched(self._batch(ds).repeat())

    @property
    def valid(self):
        ds = tf.data.Dataset.from_tensor_slices((self.x[self.valid_idx], self.y[self.valid_idx]))
        ds = ds.map(lambda x, y: (normalize(x, self.mean, self.std), y), num_parallel_calls=tf.data.AUTOTUNE)
        return prefetched(self._batch(ds))


def search_data(name, batch_size, seed, divisor=1, augment="auto", data_dir=None, min_batch=1):
    """Loads `name` and splits its training set 50/50 by `seed`.

    Args:
        divisor: image sides must be divisible by it (a supernet that halves the input r times
            needs `2**r`); anything else is refused with a message.
        augment: one of `AUGMENTATIONS`; `auto` is `none` for digits, `crop` for SVHN and
            `crop_flip` otherwise.
    """
    if augment not in AUGMENTATIONS:
        raise DataError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}.")
    x, y = load_arrays(name, data_dir)
    h, w = x.shape[1:3]
    if h % divisor or w % divisor:
        raise DataError(
            f"--dataset={name} has {h}x{w} images; the supernet halves them {int(np.log2(divisor))} "
            f"times and needs sides divisible by {divisor}. Pick fewer --layers or resize the images."
        )
    if len(x) < 2:
        raise DataError(f"--dataset={name} has {len(x)} image(s); the 50/50 split needs at least 2.")
    augment = auto_augment(name, augment)
    train_idx, valid_idx = split_indices(len(x), seed)
    xf = x[train_idx].astype("float32") / 255.0
    mean = xf.mean(axis=(0, 1, 2))
    std = xf.std(axis=(0, 1, 2)) + 1e-6
    if batch_size < min_batch:
        raise DataError(f"--batch_size={batch_size} is smaller than the {min_batch} replicas it is split over.")
    return SearchData(x, y, train_idx, valid_idx, batch_size, seed, augment, mean, std, min_batch)
