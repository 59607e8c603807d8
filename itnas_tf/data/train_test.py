"""Retraining data: a source's training set (augmented, optional cutout) and a test set.

The test set is the source's own test split, another source (`--test_dataset`), or `holdout:F`, a
seeded fraction of the training set that is then left out of training. Labels come one-hot so that
label smoothing (ImageNet settings) is one loss argument.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from itnas_tf.data.pipeline import AUGMENTATIONS, augment_image, auto_augment, normalize, prefetched, shuffled
from itnas_tf.data.sources import DataError, class_names, load_arrays, preprocessing_rule


def cutout(x, key, size):
    """DARTS's cutout: zeroes a `size` x `size` square (clipped at the borders) at a random centre."""
    h, w = x.shape[0], x.shape[1]
    centre = tf.random.stateless_uniform([], seed=key + 2, minval=0, maxval=h * w, dtype=tf.int64)
    cy, cx = centre // w, centre % w
    rows, cols = tf.range(h, dtype=tf.int64), tf.range(w, dtype=tf.int64)
    in_rows = (rows >= cy - size // 2) & (rows < cy + size // 2)
    in_cols = (cols >= cx - size // 2) & (cols < cx + size // 2)
    keep = tf.logical_not(in_rows[:, None] & in_cols[None, :])
    return x * tf.cast(keep, x.dtype)[..., None]


@dataclasses.dataclass
class TrainTestData:
    """`train(epoch)`: shuffled, augmented batches, a function of `(seed, epoch)`; `test`: in order."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    batch_size: int
    seed: int
    augment: str
    cutout: int
    mean: np.ndarray
    std: np.ndarray
    name: str = ""
    class_names: list = None

    @property
    def image_shape(self):
        return tuple(self.x_train.shape[1:])

    @property
    def preprocessing(self):
        return preprocessing_rule(self.name, self.image_shape)

    def calibration(self, n):
        """The first `n` training images as the network sees them at test time (`export`'s int8 calibration)."""
        return normalize(self.x_train[:n], self.mean, self.std).numpy()

    @property
    def train_size(self):
        return len(self.x_train)

    @property
    def test_size(self):
        return len(self.x_test)

    def _one_hot(self, x, y):
        return x, tf.one_hot(y, self.num_classes)

    def _transform(self, x, key):
        x = normalize(augment_image(x, key, self.augment), self.mean, self.std)
        return cutout(x, key, self.cutout) if self.cutout else x

    def train(self, epoch):
        ds = shuffled(self.x_train, self.y_train, self.seed * 1_000_003 + epoch, self._transform)
        return prefetched(ds.map(self._one_hot).batch(self.batch_size))

    @property
    def test(self):
        ds = tf.data.Dataset.from_tensor_slices((self.x_test, self.y_test))
        ds = ds.map(lambda x, y: self._one_hot(normalize(x, self.mean, self.std), y))
        return prefetched(ds.batch(self.batch_size))


def _holdout(test_name, x, y, seed):
    try:
        fraction = float(test_name[len("holdout:"):])
    except ValueError:
        fraction = -1.0
    if not 0 < fraction < 1:
        raise DataError(f"--test_dataset={test_name}: holdout:F needs a fraction 0 < F < 1, e.g. holdout:0.2.")
    n_test = int(round(len(x) * fraction))
    if not 0 < n_test < len(x):
        raise DataError(f"--test_dataset={test_name} leaves no test or no training images of {len(x)}.")
    order = np.random.default_rng([seed, 1]).permutation(len(x))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return x[train], y[train], x[test], y[test]


def train_test_data(name, test_name=None, batch_size=96, seed=0, augment="auto", cutout_size=0, data_dir=None):
    """Loads the training set of `name` and the test set `test_name`: `name`'s test split by default,
    the whole of another `npz:` file (or `digits`), the test split of another source, or `holdout:F`."""
    if augment not in AUGMENTATIONS:
        raise DataError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}.")
    x, y = load_arrays(name, data_dir)
    if test_name and test_name.startswith("holdout:"):
        x, y, x_test, y_test = _holdout(test_name, x, y, seed)
    else:
        test_name = test_name or name
        whole = test_name != name and (test_name == "digits" or test_name.startswith("npz:"))
        x_test, y_test = load_arrays(test_name, data_dir, split="train" if whole else "test")
    if x_test.shape[1:] != x.shape[1:]:
        raise DataError(
            f"Test images are {x_test.shape[1:]} but training images {x.shape[1:]}; give a test set of the same size."
        )
    num_classes = int(y.max()) + 1
    if y_test.max() >= num_classes:
        raise DataError(f"The test set has label {int(y_test.max())}; the training set only {num_classes} classes.")
    xf = x.astype("float32") / 255.0
    mean, std = xf.mean(axis=(0, 1, 2)), xf.std(axis=(0, 1, 2)) + 1e-6
    return TrainTestData(
        x, y, x_test, y_test, num_classes, batch_size, seed, auto_augment(name, augment), cutout_size, mean, std,
        name, class_names(name, data_dir),
    )
