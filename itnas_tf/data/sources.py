"""Where images come from: `--dataset` names (DESIGN.md 6), read into `(x uint8 NHWC, y int64)`.

- `digits`: scikit-learn's bundled 8x8 digits, the offline default.
- `npz:PATH`: arrays `x` (uint8 NHWC) and `y`.
- `folder:PATH`: an image folder, one sub-folder per class (or `PATH/train/<class>/`), through
  `tfds.ImageFolder`.
- any `tensorflow-datasets` name (`cifar10`, `cifar100`, `svhn_cropped`, `imagenet_resized/16x16`, ...),
  and `imagenet16_120`: the first 120 classes of `imagenet_resized/16x16`, as NAS-Bench-201 uses.

tfds retries a download for minutes when there is no network; a dataset that is not prepared in
`--data_dir` is therefore only downloaded after a quick check that its host answers.
"""

import pathlib
import socket
import urllib.parse

import numpy as np


class DataError(ValueError):
    """A dataset that cannot be read or used."""


ALIASES = {"imagenet16_120": ("imagenet_resized/16x16", 120)}

# Hosts the tfds builders download from; anything else is checked against tfds's own bucket.
DOWNLOAD_HOSTS = {
    "cifar10": "https://www.cs.toronto.edu",
    "cifar100": "https://www.cs.toronto.edu",
    "svhn_cropped": "http://ufldl.stanford.edu",
    "imagenet_resized": "http://www.image-net.org",
}
DEFAULT_HOST = "https://storage.googleapis.com"
PROBE_SECONDS = 3.0
DIGITS_MAX = 16.0  # scikit-learn's digits are 0-16; they are read as 0-255


def preprocessing_rule(name, image_shape, shorter_side=None):
    """How a stored image becomes the network input, for `manifest.json` and `python -m export.predict`:
    the pixels, TensorFlow's bilinear resize (to `shorter_side` then the central crop where given, else
    to the input size; none for an image of that size), and the normalisation formula (mean and std
    are added by the caller)."""
    channels = image_shape[-1]
    pixels = f"uint8 0-255, {'RGB' if channels == 3 else f'{channels} channel(s)'}, HWC"
    if name == "digits":
        pixels += f"; scikit-learn's digits (0-{DIGITS_MAX:g}) are scaled by round(x * 255 / {DIGITS_MAX:g})"
    return {
        "formula": "(x / 255 - mean) / std",
        "pixels": pixels,
        "grayscale_to_rgb": shorter_side is not None,
        "resize": {"method": "bilinear", "half_pixel_centers": True, "antialias": False,
                   "shorter_side": shorter_side, "then": "central crop" if shorter_side else None,
                   "size": list(image_shape[:2])},
    }


NO_TEST_SPLIT = "{name} has no test split; pass --test_dataset (a source with test images, or holdout:FRACTION)."


def load_arrays(name, data_dir=None, split="train"):
    """`(x uint8 NHWC, y int64)`: the training (`split="train"`) or test (`"test"`) split of `name`.

    The test split of a tfds dataset without one is its `validation` split (ImageNet); `digits` and
    `npz:` files have no test split (an `npz:` file can be given as the test dataset itself).
    """
    if split == "test" and (name == "digits" or name.startswith("npz:")):
        raise DataError(NO_TEST_SPLIT.format(name=f"--dataset={name}"))
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = np.round(digits.images * (255.0 / DIGITS_MAX)).astype("uint8")[..., None]
        return x, digits.target.astype("int64")
    if name.startswith("npz:"):
        return _npz(name, pathlib.Path(name[4:]))
    if name.startswith("folder:"):
        return _folder(name, pathlib.Path(name[7:]), split)
    return _tfds(name, data_dir, split)


def class_names(name, data_dir=None):
    """The class names of `name` in label order, or None where the data has none: digits "0".."9", an
    `npz:` file's `class_names` array, an image folder's sub-folders, a tfds dataset's label names."""
    if name == "digits":
        return [str(i) for i in range(10)]
    if name.startswith("npz:"):
        with np.load(name[4:]) as f:
            return [str(v) for v in f["class_names"]] if "class_names" in f else None
    import tensorflow_datasets as tfds

    max_classes = None
    if name.startswith("folder:"):
        path = pathlib.Path(name[7:])
        builder = tfds.ImageFolder(str(path if (path / "train").is_dir() else path.parent))
    else:
        tfds_name, max_classes = ALIASES.get(name, (name, None))
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    names = getattr(builder.info.features[builder.info.supervised_keys[1]], "names", None)
    return list(names[:max_classes]) if names else None


def _npz(name, path):
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


def _stack(name, dataset):
    """Reads a supervised `tf.data` dataset into arrays; all images must share one size."""
    import tensorflow_datasets as tfds

    xs, ys = [], []
    for x, y in tfds.as_numpy(dataset):
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DataError(f"--dataset={name} has no training images.")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise DataError(
            f"--dataset={name}: images have different sizes ({sorted(shapes)[:3]}...); resize them "
            "to one size first."
        )
    return np.stack(xs).astype("uint8"), np.asarray(ys, dtype="int64")


def _folder(name, path, split):
    import tensorflow_datasets as tfds

    if not path.is_dir():
        raise DataError(f"--dataset={name}: no such folder {path}.")
    if (path / "train").is_dir():
        root = path
        if not (path / split).is_dir():
            raise DataError(NO_TEST_SPLIT.format(name=f"--dataset={name} (no {path / split})"))
    elif split == "train":
        root, split = path.parent, path.name
    else:
        raise DataError(NO_TEST_SPLIT.format(name=f"--dataset={name} (no {path}/train and {path}/test)"))
    try:
        builder = tfds.ImageFolder(str(root))
        dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    except Exception as e:  # tfds raises assorted types for unreadable folders
        raise DataError(
            f"--dataset={name}: cannot read it as an image folder (one sub-folder per class): {e}"
        ) from None
    return _stack(name, dataset)


def _reachable(url):
    """Whether a TCP connection to the host of `url` opens within `PROBE_SECONDS`."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=PROBE_SECONDS):
            return True
    except OSError:
        return False


def tfds_dataset(name, data_dir=None, split="train"):
    """`(dataset of (image, label), builder)` for a tfds name (or `imagenet16_120`), prepared in
    `data_dir` or downloaded after a quick check that its host answers. `split="test"` is the test
    split, or the validation split of a dataset without one (ImageNet)."""
    import tensorflow_datasets as tfds

    tfds_name, max_classes = ALIASES.get(name, (name, None))
    known = ("digits", "npz:PATH", "folder:PATH", "imagenet16_120", "a tensorflow-datasets name")
    if tfds_name.split("/")[0].split(":")[0] not in tfds.list_builders():
        raise DataError(f"Unknown --dataset {name!r}: use one of {', '.join(known)} (e.g. cifar10).")

    def load(download):
        builder = tfds.builder(tfds_name, data_dir=data_dir)
        split_name = split
        if split == "test":
            splits = builder.info.splits
            split_name = "test" if "test" in splits or "validation" not in splits else "validation"
        if download:
            builder.download_and_prepare()
        ds = builder.as_dataset(split=split_name, as_supervised=True, shuffle_files=False)
        if max_classes is not None:
            ds = ds.filter(lambda x, y: y < max_classes)
        return ds, builder

    try:
        return load(download=False)
    except AssertionError:  # tfds: "could not find data in <data_dir>"
        pass
    where = data_dir or "tensorflow-datasets' default folder (~/tensorflow_datasets)"
    host = DOWNLOAD_HOSTS.get(tfds_name.split("/")[0], DEFAULT_HOST)
    if not _reachable(host):
        raise DataError(
            f"--dataset={name}: {tfds_name} is not prepared in {where}, and {host} cannot be reached "
            f"to download it (offline?). On a machine with network, run `tfds build {tfds_name} "
            "--data_dir=DIR` (for manual-download datasets put the archives in DIR/downloads/manual "
            "first, see the tfds catalog), copy DIR here and pass --data_dir=DIR."
        )
    try:
        return load(download=True)
    except AssertionError as e:  # e.g. a manual download that is missing
        raise DataError(f"--dataset={name}: {e} Pass --data_dir=DIR where it is prepared.") from None


def _tfds(name, data_dir, split):
    ds, _ = tfds_dataset(name, data_dir, split)
    return _stack(name, ds.batch(4096).unbatch())
