"""Search data: the training set of a source, split 50/50 into search-train and search-valid.

Sources (`--dataset`): `digits` (scikit-learn's bundled 8x8 digits: the offline default) and
`npz:PATH` (arrays `x`, uint8 NHWC, and `y`). The split is fixed by the seed, so a resumed or
repeated search sees the same halves.
"""

import dataclasses
import pathlib

import numpy as np
import tensorflow as tf


class DataError(ValueError):
    """A dataset that cannot be read or used."""


@dataclasses.dataclass
class SearchData:
    train: tf.data.Dataset
    valid: tf.data.Dataset
    num_classes: int
    image_shape: tuple
    train_size: int
    valid_size: int


def load_arrays(name):
    """`(x uint8 NHWC, y int)` of a source's training split."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = np.round(digits.images * (255.0 / 16.0)).astype("uint8")[..., None]
        return x, digits.target.astype("int64")
    if name.startswith("npz:"):
        path = pathlib.Path(name[4:])
        if not path.is_file():
            raise DataError(f"--dataset={name}: no such file {path}.")
        try:
            with np.load(path) as f:
                x, y = f["x"], f["y"]
        except (KeyError, ValueError, OSError) as e:
            raise DataError(f"--dataset={name}: expected an .npz with arrays 'x' and 'y' ({e}).") from None
        if x.ndim != 4 or x.dtype != np.uint8 or len(x) != len(y):
            raise DataError(
                f"--dataset={name}: 'x' must be uint8 (N, H, W, C) with one label per image in 'y'; "
                f"got x {x.dtype} {x.shape}, y {y.shape}."
            )
        return x, y.astype("int64").reshape(-1)
    raise DataError(f"Unknown --dataset {name!r}: use 'digits' or 'npz:PATH'.")


def split_indices(n, seed):
    """A seeded 50/50 split of `range(n)` into disjoint train and valid index arrays."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def search_data(name, batch_size, seed, min_size=1):
    """Builds the search-train and search-valid pipelines of `name`.

    Images are scaled with the channel mean and std of search-train. Search-train is shuffled each
    epoch (seeded), search-valid is not; both are cached, batched and prefetched.
    """
    x, y = load_arrays(name)
    if min(x.shape[1:3]) < min_size:
        raise DataError(
            f"--dataset={name} has {x.shape[1]}x{x.shape[2]} images; the supernet reduces them "
            f"below one pixel (it needs at least {min_size}x{min_size}). Use fewer reductions or a "
            "larger input."
        )
    num_classes = int(y.max()) + 1
    train_idx, valid_idx = split_indices(len(x), seed)
    xf = x.astype("float32") / 255.0
    mean = xf[train_idx].mean(axis=(0, 1, 2))
    std = xf[train_idx].std(axis=(0, 1, 2)) + 1e-6
    xf = (xf - mean) / std

    def pipeline(idx, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((xf[idx], y[idx])).cache()
        if shuffle:
            ds = ds.shuffle(len(idx), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    return SearchData(
        train=pipeline(train_idx, True),
        valid=pipeline(valid_idx, False),
        num_classes=num_classes,
        image_shape=tuple(x.shape[1:]),
        train_size=len(train_idx),
        valid_size=len(valid_idx),
    )
