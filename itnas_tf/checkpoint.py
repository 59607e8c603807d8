"""Search checkpoints: model and optimizer variables plus a JSON state, in one atomically written file.

One `.npz` holds everything a resumed run needs, so there is never a moment at which the weights
and the state that describes them disagree: the file is written beside the old one and renamed over
it. A kill during the write leaves the previous checkpoint intact.
"""

import json
import pathlib
import zipfile

import numpy as np

from itnas_tf.results import atomic_write


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that belongs to another configuration."""


def _groups(model, optimizers):
    # `variables`, not `weights`: the states of seed generators (drop-path, noise) must resume too.
    return {"model": model.variables, **{name: opt.variables for name, opt in optimizers.items()}}


def save(path, model, optimizers, state, write=True):
    """Writes the variables of `model` and of each optimizer in `optimizers` (a dict), and `state`.

    `write=False` reads them without writing: a non-chief worker must, because reading a variable
    synchronised on read is a collective every worker joins.
    """
    arrays = {}
    paths = {}
    for group, variables in _groups(model, optimizers).items():
        paths[group] = [v.path for v in variables]
        arrays.update({f"{group}/{i}": np.asarray(v.numpy()) for i, v in enumerate(variables)})
    if not write:
        return
    meta = json.dumps({"state": state, "paths": paths})
    arrays["meta"] = np.frombuffer(meta.encode(), dtype=np.uint8)
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_state(path):
    """The JSON state of the checkpoint at `path`, without touching any model."""
    return _read(path)[1]["state"]


def _read(path):
    path = pathlib.Path(path)
    try:
        data = np.load(path)
        meta = json.loads(data["meta"].tobytes().decode())
        return data, meta
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise CheckpointError(f"Cannot read the checkpoint {path}: {e}. Delete it to start over.") from None


def restore(path, model, optimizers):
    """Assigns the saved variables to the built `model` and `optimizers`; returns the state.

    Raises:
        CheckpointError: the file is unreadable, or its variables do not match (another space,
            width or strategy wrote it).
    """
    data, meta = _read(path)
    for group, variables in _groups(model, optimizers).items():
        saved = meta["paths"].get(group, [])
        shapes = [data[f"{group}/{i}"].shape for i in range(len(saved))]
        if len(saved) != len(variables) or any(
            tuple(v.shape) != s for v, s in zip(variables, shapes)
        ):
            raise CheckpointError(
                f"The checkpoint {path} does not match this network ({group}: {len(saved)} saved "
                f"variables, {len(variables)} here, or their shapes differ). It was written with other "
                "settings; resume with the same flags, or start over in another --output_dir."
            )
        for i, v in enumerate(variables):
            v.assign(data[f"{group}/{i}"])
    return meta["state"]
