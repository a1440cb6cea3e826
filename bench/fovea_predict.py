"""`fovea predict`'s class probabilities for images in memory, for the bench scripts that check
another runtime against fovea (bench/onnx_check.py, bench/safetensors_check.py)."""

import json
import os
import subprocess
import tempfile

import numpy as np


def fovea_probabilities(fovea, run, checkpoint, images, classes):
    """`fovea predict RUN`'s probabilities of each grayscale image (`[n, rows, cols]` bytes,
    written as PGM files), `[n, classes]`, in the order of `classes`."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, img in enumerate(images):
            files.append(os.path.join(tmp, f"{i:05}.pgm"))
            with open(files[-1], "wb") as f:
                f.write(b"P5 %d %d 255\n" % (img.shape[1], img.shape[0]) + img.tobytes())
        out = subprocess.run(
            [fovea, "predict", run, "--checkpoint", checkpoint, "--json",
             "-k", str(len(classes)), *files],
            check=True, capture_output=True, text=True,
        ).stdout
    probs = np.zeros((len(files), len(classes)))
    for i, p in enumerate(json.loads(out)):
        for name, prob in p["top"]:
            probs[i, classes.index(name)] = prob
    return probs
