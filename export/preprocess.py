"""Images in, network input out, exactly as `manifest.json`'s `preprocessing` says: numpy and Pillow only.

The resize is TensorFlow's bilinear (`tf.image.resize`: half-pixel centres, no antialiasing) written
in numpy, so an image of another size gets the input that training's pipeline would have made of it,
and one of the training size is not resized at all.
"""

import pathlib

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")


class InputError(ValueError):
    """An image or array that cannot be read or does not fit the network."""


def read_inputs(paths):
    """`[(name, uint8 HWC array)]` from image files, folders of them, and `.npy`/`.npz` batches."""
    images = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(f"{path} holds no {', '.join(IMAGE_SUFFIXES)} files.")
            images += [(str(p), read_image(p)) for p in files]
        elif path.suffix.lower() in ARRAY_SUFFIXES:
            images += [(f"{path}[{i}]", x) for i, x in enumerate(read_array(path))]
        else:
            images.append((str(path), read_image(path)))
    return images


def read_image(path):
    """A PNG or JPEG file as uint8 HWC (C = 1 for greyscale, 3 for colour; a palette is expanded)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InputError(f"No such image file: {path}.")
    try:
        with Image.open(path) as image:
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in ("I;16", "I", "F", "1"):
                image = image.convert("L")
            x = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise InputError(f"{path} is not a readable PNG or JPEG image ({e}).") from None
    return x[..., None] if x.ndim == 2 else x


def read_array(path):
    """An `.npy` array, or an `.npz`'s `x` (or only) array, of uint8 pixels: one HWC image or NHWC."""
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            x = data
        else:
            with data:
                names = list(data.keys())
                if "x" not in names and len(names) != 1:
                    raise InputError(f"{path}: an .npz needs an array named 'x' (or a single array); it has {names}.")
                x = data["x" if "x" in names else names[0]]
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path} is not a readable .npy/.npz file ({e}).") from None
    if x.dtype != np.uint8 or x.ndim not in (3, 4):
        raise InputError(
            f"{path}: expected uint8 pixels 0-255, one image (H, W, C) or a batch (N, H, W, C); got {x.dtype} "
            f"{x.shape}. Convert as the training data was (manifest.json, preprocessing.pixels)."
        )
    return x[None] if x.ndim == 3 else x


def prepare(name, image, rule, shape):
    """The float32 network input `shape` (H, W, C) for one uint8 HWC `image`, by `rule` (the manifest's
    `preprocessing`)."""
    channels = image.shape[-1]
    if channels == 1 and shape[-1] == 3 and rule.get("grayscale_to_rgb"):
        image = np.repeat(image, 3, axis=-1)
    elif channels != shape[-1]:
        raise InputError(
            f"{name} has {channels} channel(s); the network takes {shape[-1]} ({rule['pixels']})."
        )
    x = image.astype("float32")
    resize = rule["resize"]
    if resize.get("shorter_side"):  # the shorter side to this length, then the central crop
        scale = np.float32(resize["shorter_side"]) / np.float32(min(x.shape[:2]))
        x = resize_bilinear(x, np.round(np.asarray(x.shape[:2], "float32") * scale).astype(int))
        top, left = ((np.asarray(x.shape[:2]) - shape[:2]) // 2).clip(0)
        x = x[top:top + shape[0], left:left + shape[1]]
    if x.shape[:2] != tuple(shape[:2]):
        x = resize_bilinear(x, shape[:2])
    mean, std = (np.asarray(rule[k], "float32") for k in ("mean", "std"))
    return (x / np.float32(255.0) - mean) / std


def resize_bilinear(x, size):
    """`tf.image.resize(x, size)` (bilinear, half-pixel centres, no antialiasing) of float32 HWC `x`."""
    rows, cols = (_weights(n_in, n_out) for n_in, n_out in zip(x.shape[:2], size))
    top, bottom, y_lerp = rows
    left, right, x_lerp = cols
    x_lerp = x_lerp[None, :, None]
    upper = x[top][:, left] + (x[top][:, right] - x[top][:, left]) * x_lerp
    lower = x[bottom][:, left] + (x[bottom][:, right] - x[bottom][:, left]) * x_lerp
    return upper + (lower - upper) * y_lerp[:, None, None]


def _weights(n_in, n_out):
    """TensorFlow's `compute_interpolation_weights` with half-pixel centres, in float32."""
    scale = np.float32(n_in) / np.float32(n_out)
    source = (np.arange(n_out, dtype="float32") + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(source)
    lower = np.maximum(floor, 0).astype(int)
    upper = np.minimum(np.ceil(source), n_in - 1).astype(int)
    return lower, upper, (source - floor).astype("float32")
