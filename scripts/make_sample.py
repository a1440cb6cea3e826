#!/usr/bin/env python3
"""Builds fovea's built-in sample: a stratified subset of Fashion-MNIST (1000 train + 200 test
images per class, the first ones of each class in file order), written as gzipped IDX files
under data/sample/. Source: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist).

    python3 scripts/make_sample.py [SOURCE_DIR]
"""
import gzip, struct, sys, pathlib

SRC = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
DST = pathlib.Path(__file__).resolve().parent.parent / "data" / "sample"


def read_idx(path):
    data = gzip.open(path, "rb").read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return dims, data[4 + 4 * ndim :]


def write_idx(path, dims, payload):
    header = bytes([0, 0, 0x08, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)
    # mtime=0 keeps the file byte-identical from one regeneration to the next
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(header + payload)


def subset(split, per_class):
    idims, images = read_idx(SRC / f"{split}-images-idx3-ubyte.gz")
    _, labels = read_idx(SRC / f"{split}-labels-idx1-ubyte.gz")
    size = idims[1] * idims[2]
    taken, counts = [], [0] * 10
    for i, y in enumerate(labels):
        if counts[y] < per_class:
            counts[y] += 1
            taken.append(i)
    out_images = b"".join(images[i * size : (i + 1) * size] for i in taken)
    out_labels = bytes(labels[i] for i in taken)
    write_idx(DST / f"{split}-images-idx3-ubyte.gz", (len(taken), idims[1], idims[2]), out_images)
    write_idx(DST / f"{split}-labels-idx1-ubyte.gz", (len(taken),), out_labels)
    print(f"{split}: {len(taken)} images")


DST.mkdir(parents=True, exist_ok=True)
subset("train", 1000)
subset("t10k", 200)
