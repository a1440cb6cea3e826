#!/usr/bin/env python3
"""Does ONNX Runtime compute what fovea does, from the model `fovea export --format onnx` wrote?

Runs the exported model with onnxruntime on the first N test images of an IDX folder
(Fashion-MNIST's, or fovea's built-in sample in data/sample), as raw pixels in [0, 255]; classifies
the same images (as PGM files) with `fovea predict RUN`; and compares the two: top-1 agreement
and the largest difference of a class probability. Also checks that a batch of one gives what
the whole batch gave, and reports ONNX Runtime's accuracy (where the folder has the labels)
and its speed on the whole batch. Prints one JSON line and
exits 1 if any top-1 differs or a probability differs by more than --tolerance.

    bench/onnx_check.py artifacts/RUN model.onnx --data-dir DIR [--images 1000]

Needs onnxruntime and numpy (`pip install onnxruntime numpy`).
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fovea_predict import fovea_probabilities  # noqa: E402


def read_idx(data_dir, name):
    """An IDX file of the folder (gzipped or not) as an array of bytes, or None."""
    for file in (name + ".gz", name):
        path = os.path.join(data_dir, file)
        if os.path.exists(path):
            opener = gzip.open if file.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
            return np.frombuffer(data, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("file")
    ap.add_argument("--data-dir", required=True, help="a folder with t10k-images-idx3-ubyte(.gz)")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--checkpoint", default="best", help="the checkpoint the file was exported from")
    ap.add_argument("--fovea", default="target/release/fovea")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    session = ort.InferenceSession(args.file, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    classes = json.loads(meta["classes"])
    shape = json.loads(meta["input_shape"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    if shape != [1, 28, 28]:
        sys.exit(f"this check feeds 28 x 28 grayscale images; the model takes {shape}")

    images = read_idx(args.data_dir, "t10k-images-idx3-ubyte")
    if images is None:
        sys.exit(f"no t10k-images-idx3-ubyte(.gz) in {args.data_dir}")
    images = images[: args.images]
    labels = read_idx(args.data_dir, "t10k-labels-idx1-ubyte")
    x = images.astype(np.float32)[:, None, :, :]
    started = time.perf_counter()
    (onnx,) = session.run([out.name], {inp.name: x})
    seconds = time.perf_counter() - started
    (one,) = session.run([out.name], {inp.name: x[:1]})
    fovea = fovea_probabilities(args.fovea, args.run, args.checkpoint, images, classes)

    diff = float(np.abs(onnx - fovea).max())
    agree = int((onnx.argmax(1) == fovea.argmax(1)).sum())
    batch_of_one = float(np.abs(one[0] - onnx[0]).max())
    print(json.dumps({
        "kind": meta["kind"],
        "input": [inp.name, inp.shape],
        "output": [out.name, out.shape],
        "images": len(images),
        "top1_agree": agree,
        "max_probability_difference": diff,
        "batch_of_one_difference": batch_of_one,
        "onnx_accuracy": None if labels is None
        else float((onnx.argmax(1) == labels[: len(images)]).mean()),
        "onnx_images_per_second": round(len(images) / seconds),
        "onnxruntime": ort.__version__,
    }))
    if agree != len(images) or diff > args.tolerance or batch_of_one > args.tolerance:
        sys.exit(1)


if __name__ == "__main__":
    main()
