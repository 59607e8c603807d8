"""Writing output files atomically, so a kill never leaves a half-written file."""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile


def readable_by_default(path):
    """Gives `path` the permissions a plainly created file or folder would have (mkstemp's are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


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
        readable_by_default(tmp)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_files(folder):
    """Yields a staging folder beside `folder`; on success moves each file made in it into `folder`
    (which may hold other files), so a failure on the way leaves `folder` as it was."""
    folder = pathlib.Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        yield staging
        folder.mkdir(exist_ok=True)
        for path in sorted(staging.iterdir()):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(path, text):
    with atomic_write(path) as f:
        f.write(text)


def write_json_atomic(path, data):
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
