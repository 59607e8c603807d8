"""`python -m export.predict --model=EXPORT_DIR IMAGE...`: the top classes of images, from an exported file.

Needs numpy, Pillow and the runtime (onnxruntime, or `ai_edge_litert` for `.tflite` files), not
TensorFlow and not `itnas_tf`: how an image becomes the network input is read from the export's
`manifest.json` (`export.preprocess`). IMAGE: PNG/JPEG files, folders of them, `.npy`/`.npz` batches of
uint8 pixels. Exit status 2 on bad input (a missing manifest, a model file from another export, an
image the network cannot take).
"""

import argparse
import json
import pathlib
import sys

import numpy as np

from export.preprocess import InputError, prepare, read_inputs
from export.runtimes import RUNTIMES, file_digest

CHUNK = 64  # images per runtime call


class Predictor:
    """An export's model file in its runtime, with the manifest's preprocessing and class names."""

    def __init__(self, folder, runtime="onnx", threads=0):
        folder = pathlib.Path(folder)
        try:
            self.manifest = json.loads((folder / "manifest.json").read_text())
        except FileNotFoundError:
            raise InputError(f"No manifest.json in {folder}: pass --model=the folder that `python -m export` wrote.") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{folder / 'manifest.json'} is not valid JSON ({e}); export again.") from None
        files = self.manifest["files"]
        if runtime not in files:
            raise InputError(f"{folder} has no {runtime} file (it has {', '.join(files)}); export with "
                             f"--formats=...,{runtime} or pick --runtime from those.")
        path = folder / files[runtime]
        if not path.is_file():
            raise InputError(f"{path} is missing; export again.")
        if "sha256" not in self.manifest:
            raise InputError(f"{folder / 'manifest.json'} was written before `export.predict` existed (it lacks the "
                             "preprocessing rule and the files' SHA-256): export the checkpoint again.")
        if file_digest(path) != self.manifest["sha256"].get(runtime):
            raise InputError(f"{path} is not the file this manifest.json was written with (its SHA-256 differs): "
                             "keep an export's files together, or export again.")
        self.run = RUNTIMES[runtime](path, threads)
        self.shape = tuple(self.manifest["input"]["shape"][1:])
        self.classes = self.manifest.get("classes")

    def probabilities(self, images):
        """Softmax over the classes for `[(name, uint8 HWC image)]`, `(N, classes)` float64."""
        batch = np.stack([prepare(name, x, self.manifest["preprocessing"], self.shape) for name, x in images])
        logits = np.concatenate([self.run(batch[i:i + CHUNK]) for i in range(0, len(batch), CHUNK)])
        logits = logits.astype("float64") - logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    def top(self, probabilities, k):
        """`[{"index", "label", "prob"}]`, the `k` most probable classes first."""
        order = np.argsort(-probabilities, kind="stable")[:k]
        return [{"index": int(i), "label": self.classes[i] if self.classes else str(i), "prob": float(probabilities[i])}
                for i in order]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m export.predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files, folders of them, .npy/.npz batches")
    parser.add_argument("--model", required=True, help="the folder `python -m export` wrote")
    parser.add_argument("--runtime", choices=sorted(RUNTIMES), default="onnx", help="which exported file runs")
    parser.add_argument("--top_k", type=int, default=5, help="classes shown per image")
    parser.add_argument("--threads", type=int, default=0, help="runtime threads (0: the runtime's choice)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per image")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top_k must be at least 1")
    try:
        predictor = Predictor(args.model, args.runtime, args.threads)
        images = read_inputs(args.images)
        probabilities = predictor.probabilities(images)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results = [{"file": name, "top": predictor.top(p, args.top_k)} for (name, _), p in zip(images, probabilities)]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print(result["file"])
            for entry in result["top"]:
                print(f"  {entry['prob']:.4f}  {entry['label']} ({entry['index']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
