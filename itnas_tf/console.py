"""What a search or a retraining prints while it runs: the story of the run, one line per event.

A run fits one epoch at a time (to select, checkpoint and resume between epochs), so Keras's own
`Epoch k/k` header would count wrong; these callbacks and `epoch_line` replace it. The progress bar
stays on a terminal; elsewhere (CI logs, `nohup`) a run prints plain lines only.
"""

import sys
import time

import keras


def progress_callbacks():
    """`(callbacks, verbose)` for every `fit` of a run: the progress bar on a terminal, and the tracing line."""
    tty = sys.stdout.isatty()
    return [FirstStep(), *([EpochProgress()] if tty else [])], int(tty)


class EpochProgress(keras.callbacks.ProgbarLogger):
    """Keras's progress bar without its per-`fit` `Epoch k/k` header."""

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()


class FirstStep(keras.callbacks.Callback):
    """Says when TensorFlow starts tracing the training step, and how long it and the first step took:
    the silent minute of a large supernet's start."""

    def __init__(self):
        super().__init__()
        self.start = None  # when the first `fit` began; 0 once its first step is reported

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = time.perf_counter()
            print("tracing the training step (the first step waits for it) ...", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.start:
            print(f"traced; the first step took {time.perf_counter() - self.start:.1f} s", flush=True)
            self.start = 0


def epoch_line(epoch, epochs, logs, seconds, note=None):
    """`epoch k/N  loss ...  accuracy ...  (s)`, then `note` (a genotype, or that a warm-up epoch ranks nothing)."""
    metrics = "  ".join(f"{name} {value:.4f}" for name, value in logs.items())
    line = f"epoch {epoch + 1}/{epochs}  {metrics}  ({seconds:.1f} s)"
    return f"{line}  {note}" if note else line
