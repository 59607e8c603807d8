"""Retraining data streamed from tfds at one input size: ImageNet, and any dataset whose images
differ in size or do not fit in memory (`--input_size`).

Training images get the Inception-style random resized crop (8%-100% of the area, aspect 3/4-4/3)
and a flip; test images are resized so that the shorter side is `input_size / 0.875` and centre
cropped. As for in-memory data, an epoch's order and augmentation depend only on `(seed, epoch)`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from itnas_tf.data.pipeline import AUGMENTATIONS, auto_augment
from itnas_tf.data.sources import DataError, class_names, preprocessing_rule, tfds_dataset
from itnas_tf.data.train_test import cutout

# torchvision's ImageNet statistics, which published ImageNet models are trained with.
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CENTRE_CROP = 0.875
STATS_IMAGES = 2048  # other datasets: mean and std estimated on this many training images
SHUFFLE_BUFFER = 10_000


def _rgb(x):
    return tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x


def centre_crop(x, size):
    """Shorter side to `size / 0.875`, then the central `size` x `size` (float32, 0-255)."""
    shape = tf.cast(tf.shape(x)[:2], tf.float32)
    scale = size / CENTRE_CROP / tf.reduce_min(shape)
    resized = tf.image.resize(x, tf.cast(tf.round(shape * scale), tf.int32))
    return tf.image.resize_with_crop_or_pad(resized, size, size)


def random_resized_crop(x, size, key):
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(x), tf.zeros([0, 0, 4]), seed=key, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3),
        max_attempts=10, use_image_if_no_bounding_boxes=True,
    )
    return tf.image.resize(tf.slice(x, begin, extent), (size, size))


@dataclasses.dataclass
class StreamingData:
    """The same interface as `TrainTestData` (`train(epoch)`, `test`, sizes, mean/std), streamed."""

    name: str
    test_name: str
    data_dir: str
    input_size: int
    num_classes: int
    train_size: int
    test_size: int
    batch_size: int
    seed: int
    augment: str
    cutout: int
    mean: np.ndarray
    std: np.ndarray
    class_names: list = None

    @property
    def image_shape(self):
        return (self.input_size, self.input_size, 3)

    @property
    def preprocessing(self):
        return preprocessing_rule(self.name, self.image_shape, self.input_size / CENTRE_CROP)

    def calibration(self, n):
        """The first `n` training images as the test pipeline prepares images (`export`'s int8 calibration)."""
        ds, _ = tfds_dataset(self.name, self.data_dir, "train")
        ds = ds.take(n).map(lambda x, y: self._normalize(centre_crop(_rgb(tf.cast(x, tf.float32)), self.input_size)))
        return np.stack(list(ds.as_numpy_iterator()))

    def _normalize(self, x):
        return (x / 255.0 - self.mean) / self.std

    def _train_image(self, x, key):
        x = _rgb(x)
        if self.augment == "none":
            return self._normalize(centre_crop(x, self.input_size))
        x = random_resized_crop(x, self.input_size, key)
        if self.augment == "crop_flip":
            x = tf.image.stateless_random_flip_left_right(x, seed=key + 1)
        x = self._normalize(x)
        return cutout(x, key, self.cutout) if self.cutout else x

    def train(self, epoch):
        seed = self.seed * 1_000_003 + epoch
        ds, _ = tfds_dataset(self.name, self.data_dir, "train")
        ds = ds.enumerate().shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=False)
        ds = ds.map(
            lambda i, xy: (self._train_image(tf.cast(xy[0], tf.float32), tf.stack([tf.constant(seed, tf.int64), i])),
                           tf.one_hot(xy[1], self.num_classes)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
        return ds.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)

    @property
    def test(self):
        ds, _ = tfds_dataset(self.test_name, self.data_dir, "test")
        ds = ds.map(
            lambda x, y: (self._normalize(centre_crop(_rgb(tf.cast(x, tf.float32)), self.input_size)),
                          tf.one_hot(y, self.num_classes)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return ds.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)


def _size(ds):
    """Images in `ds`: tfds knows it, except after a filter (`imagenet16_120`), where it is counted."""
    n = int(ds.cardinality().numpy())
    return n if n >= 0 else int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def streaming_data(name, test_name=None, input_size=224, batch_size=128, seed=0, augment="auto", cutout_size=0,
                   data_dir=None):
    """Streams the tfds dataset `name` (train split) and `test_name`'s test split (default: `name`'s;
    its validation split where there is no test split), every image brought to `input_size`."""
    if augment not in AUGMENTATIONS:
        raise DataError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}.")
    if name == "digits" or name.startswith(("npz:", "folder:")) or (test_name or "").startswith(("npz:", "holdout:")):
        raise DataError(
            "--input_size streams a tensorflow-datasets dataset and its own test split; drop --input_size "
            "for digits, npz:, folder: and holdout: data (they are read into memory at their own size)."
        )
    test_name = test_name or name
    train, builder = tfds_dataset(name, data_dir, "train")
    test, _ = tfds_dataset(test_name, data_dir, "test")
    num_classes = builder.info.features[builder.info.supervised_keys[1]].num_classes
    mean, std = stats(name, train, input_size)
    return StreamingData(
        name, test_name, data_dir, input_size, num_classes, _size(train), _size(test), batch_size, seed,
        auto_augment(name, augment), cutout_size, mean, std, class_names(name, data_dir),
    )


def stats(name, train, input_size):
    """Per-channel `(mean, std)` of 0-1 pixels: ImageNet's for ImageNet, else estimated on training images."""
    if name.startswith("imagenet"):
        mean, std = (np.asarray(v, "float32") for v in IMAGENET_STATS)
    else:
        sample = np.concatenate([
            centre_crop(_rgb(tf.cast(x, tf.float32)), input_size).numpy()[None] / 255.0
            for x, _ in train.take(STATS_IMAGES)
        ])
        mean, std = sample.mean(axis=(0, 1, 2)), sample.std(axis=(0, 1, 2)) + 1e-6
    return np.asarray(mean, "float32"), np.asarray(std, "float32")
