"""Search data streamed from tfds at one input size: the paper's ImageNet search, whose search-train
and search-valid are subsets of imagenet2012's training set given as tfds splits (`train[:10%]`,
`train[10%:12.5%]`), far too large to hold in memory as `SearchData` does.

Search-train gets the Inception-style random resized crop and a flip; search-valid is resized and
centre cropped. An epoch's order and augmentation depend only on `(seed, epoch)`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from itnas_tf.data.pipeline import AUGMENTATIONS, auto_augment, batched
from itnas_tf.data.sources import DataError, tfds_dataset
from itnas_tf.data.streaming import SHUFFLE_BUFFER, _rgb, _size, centre_crop, random_resized_crop, stats


@dataclasses.dataclass
class StreamingSearchData:
    """`SearchData`'s interface (`train(epoch)`, `arch(epoch)`, `valid`, sizes), streamed from tfds splits."""

    name: str
    data_dir: str
    train_split: str
    valid_split: str
    input_size: int
    num_classes: int
    train_size: int
    valid_size: int
    batch_size: int
    seed: int
    augment: str
    mean: np.ndarray
    std: np.ndarray
    min_batch: int = 1

    @property
    def image_shape(self):
        return (self.input_size, self.input_size, 3)

    def _image(self, x, key, augment):
        x = _rgb(tf.cast(x, tf.float32))
        if augment and self.augment != "none":
            x = random_resized_crop(x, self.input_size, key)
            if self.augment == "crop_flip":
                x = tf.image.stateless_random_flip_left_right(x, seed=key + 1)
        else:
            x = centre_crop(x, self.input_size)
        return (x / 255.0 - self.mean) / self.std

    def _stream(self, split, salt=0, epoch=None, augment=False):
        ds, _ = tfds_dataset(self.name, self.data_dir, split)
        ds = ds.enumerate()
        seed = (self.seed * 1_000_003 + (epoch or 0)) * 2 + salt
        if epoch is not None:
            ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=False)
        ds = ds.map(
            lambda i, xy: (self._image(xy[0], tf.stack([tf.constant(seed, tf.int64), i]), augment), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )
        return batched(ds, self.batch_size, self.min_batch)

    def train(self, epoch):
        return self._stream(self.train_split, 0, epoch, augment=True).prefetch(tf.data.AUTOTUNE)

    def arch(self, epoch):
        return self._stream(self.valid_split, 1, epoch).repeat().prefetch(tf.data.AUTOTUNE)

    @property
    def valid(self):
        return self._stream(self.valid_split).prefetch(tf.data.AUTOTUNE)


def streaming_search_data(name, train_split, valid_split, input_size=224, batch_size=64, seed=0, augment="auto",
                          data_dir=None, min_batch=1):
    """Streams search-train and search-valid from the tfds splits `train_split` and `valid_split` of `name`."""
    if augment not in AUGMENTATIONS:
        raise DataError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}.")
    if name == "digits" or name.startswith(("npz:", "folder:")):
        raise DataError(
            "--search_train_split/--search_valid_split stream a tensorflow-datasets dataset; drop them for "
            "digits, npz: and folder: data (the search splits those 50/50 in memory)."
        )
    if not (train_split and valid_split):
        raise DataError("Give both --search_train_split and --search_valid_split (tfds splits, e.g. train[:10%]).")
    train, builder = tfds_dataset(name, data_dir, train_split)
    valid, _ = tfds_dataset(name, data_dir, valid_split)
    num_classes = builder.info.features[builder.info.supervised_keys[1]].num_classes
    mean, std = stats(name, train, input_size)
    return StreamingSearchData(
        name, data_dir, train_split, valid_split, input_size, num_classes, _size(train), _size(valid), batch_size,
        seed, auto_augment(name, augment), mean, std, min_batch,
    )
