"""The output folder of a run (a search or a retraining): never clobbered, resumed only by the same run."""

import shutil


def prepare(out, markers, outputs, resume, overwrite, what):
    """Refuses a folder that holds one of `markers` unless `resume` (keep) or `overwrite` (delete `outputs`)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output_dir {out} is a file; give a folder.")
    held = [name for name in markers if (out / name).exists()]
    if not held:
        return
    if overwrite:
        for name in outputs:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    elif not resume:
        raise FileExistsError(
            f"{out} already holds a {what} ({', '.join(held)}); pass --resume to continue it, "
            "--overwrite to replace it, or choose another --output_dir."
        )


def check_same_run(out, saved, config, identity, what):
    """Refuses to resume a checkpoint whose `identity` settings differ from `config`'s."""
    differ = [k for k in identity if saved.get(k) != config.get(k)]
    if differ:
        listing = ", ".join(f"--{k}={saved.get(k)} (now {config.get(k)})" for k in differ)
        raise FileExistsError(
            f"{out} holds a {what} with other settings: {listing}. Resume with the same settings, or "
            "use --overwrite or another --output_dir."
        )


def non_finite(epoch, path, last_epoch):
    """The error of a non-finite training loss in `epoch` (0-based); the checkpoint at `path` is kept."""
    kept = f"the last good checkpoint ({path}, epoch {last_epoch}) is kept" if last_epoch else "no checkpoint was written yet"
    return FloatingPointError(
        f"The training loss became non-finite in epoch {epoch + 1}; {kept}. Lower --learning_rate or "
        "--grad_clip and run again with --resume."
    )
