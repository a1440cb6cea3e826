#!/usr/bin/env python3
"""The same model as `fovea serve`, served by FastAPI + PyTorch, for `bench/serve.sh`.

Loads a `fovea export --format safetensors` file into bench/pytorch_reference.py's module of
the same kind and answers `POST /predict[?k=3]` (the body: one image) with the same JSON as
`fovea serve`: {"top": [{"class", "probability"}, ...]}. One image per request, as a FastAPI
endpoint is usually written; PyTorch on `--threads` threads.

    python bench/serve_reference.py model.safetensors --port 8081

Needs torch, safetensors, pillow, fastapi, uvicorn.
"""

import argparse
import io
import json
import os
import sys

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_check import reference_module  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with safe_open(args.file, "pt") as f:
        meta = f.metadata()
    import tomllib

    config = tomllib.loads(meta["config"])
    classes = json.loads(meta["classes"])
    channels, height, width = json.loads(meta["input_shape"])
    mean = torch.tensor(json.loads(meta["mean"])).view(-1, 1, 1)
    std = torch.tensor(json.loads(meta["std"])).view(-1, 1, 1)
    model = reference_module(meta["kind"], config["model"], len(classes))
    model.load_state_dict(load_file(args.file), strict=True)
    model.eval()

    app = FastAPI()

    @app.get("/health")
    def health():
        return "ok"

    @app.post("/predict")
    async def predict(request: Request, k: int = 3):
        body = await request.body()
        try:
            img = Image.open(io.BytesIO(body))
            img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
        except Exception as e:
            raise HTTPException(status_code=400, detail=f"cannot decode the image: {e}")
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).float().div(255.0)
        x = x.view(height, width, channels).permute(2, 0, 1)
        x = ((x - mean) / std).unsqueeze(0)
        with torch.no_grad():
            p = torch.softmax(model(x), dim=1)[0]
        top = torch.topk(p, min(k, len(classes)))
        return {"top": [{"class": classes[i], "probability": v} for v, i in zip(top.values.tolist(), top.indices.tolist())]}

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
