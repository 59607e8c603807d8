"""Writing output files atomically, so a kill never leaves a half-written file."""

import contextlib
import json
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="w"):
    """Yields a temporary file beside `path`; on success syncs it and renames it over `path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path, text):
    with atomic_write(path) as f:
        f.write(text)


def write_json_atomic(path, data):
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
