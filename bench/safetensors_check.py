#!/usr/bin/env python3
"""Does PyTorch compute what fovea does with the weights `fovea export` wrote?

Loads a `fovea export RUN --format safetensors` file into the module of the same kind in
bench/pytorch_reference.py (`load_state_dict`, strict), classifies the first N Fashion-MNIST
test images with it, classifies the same images (as PGM files) with `fovea predict RUN`, and
compares the two: top-1 agreement and the largest difference of a class probability.
Exits 1 if any top-1 differs or a probability differs by more than --tolerance.

    bench/safetensors_check.py artifacts/RUN model.safetensors --data-dir DIR [--images 1000]

Needs torch, safetensors and numpy (`pip install torch safetensors numpy`).
"""

import argparse
import json
import os
import sys
import tomllib

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_reference as ref  # noqa: E402
from fovea_predict import fovea_probabilities  # noqa: E402


def reference_module(kind, model, classes):
    """The reference module for the run's [model], or exit saying what it lacks."""
    if kind in ("cnn", "ssgan"):
        blocks = model["blocks"]
        for b in blocks:
            if (b["kernel"], b["pool"], b["batch_norm"]) != (3, 2, True):
                sys.exit("the reference Cnn has 3x3 convolutions, batch norm and 2x2 pooling")
        hidden = model.get("hidden", [])
        if len(hidden) > 1:
            sys.exit("the reference Cnn has at most one hidden layer")
        return ref.Cnn(
            classes=classes,
            channels=tuple(b["channels"] for b in blocks),
            block_dropout=tuple(b["dropout"] for b in blocks),
            hidden=hidden[0] if hidden else 0,
            dropout=model["dropout"],
        )
    if kind == "rnn":
        return ref.Rnn(classes)
    if kind == "cnn-rnn":
        return ref.CnnRnn(classes)
    sys.exit(f"bench/pytorch_reference.py has no module for kind `{kind}`")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("file")
    ap.add_argument("--data-dir", required=True, help="Fashion-MNIST's IDX files")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--checkpoint", default="best", help="the checkpoint the file was exported from")
    ap.add_argument("--fovea", default="target/release/fovea")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    with safe_open(args.file, "pt") as f:
        meta = f.metadata()
    config = tomllib.loads(meta["config"])
    classes = json.loads(meta["classes"])
    mean, std = json.loads(meta["mean"])[0], json.loads(meta["std"])[0]
    module = reference_module(meta["kind"], config["model"], len(classes))
    module.load_state_dict(load_file(args.file), strict=True)
    module.eval()

    pixels = ref.read_idx(ref.find(args.data_dir, "t10k-images-idx3-ubyte"))[: args.images]
    fovea = torch.from_numpy(fovea_probabilities(
        args.fovea, args.run, args.checkpoint, pixels.numpy(), classes))

    x = (pixels.float().div(255.0).unsqueeze(1) - mean) / std
    with torch.no_grad():
        torch_probs = torch.softmax(module(x), dim=1).double()
    diff = (torch_probs - fovea).abs().max().item()
    agree = (torch_probs.argmax(1) == fovea.argmax(1)).sum().item()
    print(json.dumps({
        "kind": meta["kind"],
        "images": len(pixels),
        "top1_agree": agree,
        "max_probability_difference": diff,
        "torch": torch.__version__,
    }))
    if agree != len(pixels) or diff > args.tolerance:
        sys.exit(1)


if __name__ == "__main__":
    main()
