"""Grad-CAM per candidate op (paper Fig. 4): where, for a given class, each candidate of one edge looks."""

import numpy as np
import tensorflow as tf

from itnas_tf.ops.basic import Zero
from itnas_tf import plots


def candidate_cams(model, layer, images, classes):
    """`(images, candidates, h, w)` Grad-CAM maps of every candidate of `layer` (a `MixedLayer` of
    `model`), each in [0, 1] at the images' size; all zeros for `none`, which has no output.

    Grad-CAM (Selvaraju et al. 2017) on the candidate's output `O`: channel weights = the spatial mean
    of `d logit[class] / dO`, map = ReLU(sum over channels of weight * O), resized bilinearly.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    captured = {}

    def capture(i, call):
        def hooked(*args, **kwargs):
            captured[i] = call(*args, **kwargs)
            return captured[i]

        return hooked

    hooked = [c for c in layer.candidates if not isinstance(c, Zero)]
    for i, candidate in enumerate(layer.candidates):
        if candidate in hooked:
            object.__setattr__(candidate, "call", capture(i, candidate.call))
    try:
        with tf.GradientTape(persistent=True) as tape:
            logits = model(images, training=False)
            target = tf.reduce_sum(tf.gather(logits, np.asarray(classes), axis=1, batch_dims=1))
        if len(captured) != len(hooked):
            raise ValueError(f"{layer.name} did not run in a forward pass of {model.name}: is it a layer of this model?")
        maps = np.zeros((len(images), len(layer.candidates), *images.shape[1:3]), "float32")
        for i, output in captured.items():
            weights = tf.reduce_mean(tape.gradient(target, output), axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * output, axis=-1, keepdims=True))
            cam = tf.image.resize(cam, images.shape[1:3]).numpy()[..., 0]
            peak = cam.max(axis=(1, 2), keepdims=True)
            maps[:, i] = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
        del tape
    finally:
        for candidate in hooked:
            object.__delattr__(candidate, "call")
    return maps


def plot_cams(images, maps, names, selected, path, title=None):
    """An image grid (one row per image: the image, then each candidate's map over it), the column of
    the `selected` op marked; written to `path` (PNG)."""
    from matplotlib import pyplot as plt

    rows, cols = len(images), len(names) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    shown = (images - images.min()) / max(float(images.max() - images.min()), 1e-8)
    gray = shown.shape[-1] == 1
    if gray:
        shown = shown[..., 0]
    for r in range(rows):
        axes[r, 0].imshow(shown[r], cmap="gray" if gray else None)
        for c, name in enumerate(names, start=1):
            axes[r, c].imshow(shown[r], cmap="gray" if gray else None)
            axes[r, c].imshow(maps[r, c - 1], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=8)
    for c, name in enumerate(names, start=1):
        mark = name == selected
        axes[0, c].set_title(f"{name}\n(selected)" if mark else name, fontsize=8,
                             color="red" if mark else "black", fontweight="bold" if mark else "normal")
        if mark:
            for r in range(rows):
                for spine in axes[r, c].spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plots.write(fig, path)
