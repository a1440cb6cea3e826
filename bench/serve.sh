#!/usr/bin/env bash
# `fovea serve` against FastAPI + PyTorch serving the same model, on loopback, back to back:
# requests/s and latency (p50, p99) at concurrency 1, 8 and 64, each server measured while the
# other is stopped. The client is wrk (a fixed number of connections, each sending its next
# request when the last is answered: a bounded load).
#
#   bench/serve.sh artifacts/RUN               # a cnn, rnn or cnn-rnn run
#   DURATION=20s CONCURRENCY="1 8 64" bench/serve.sh artifacts/RUN
#
# Needs: a built fovea, wrk (apt-get install wrk), a Python with torch, safetensors, pillow,
# fastapi and uvicorn (PYTHON=..., default python3). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=${1:?usage: bench/serve.sh artifacts/RUN}
FOVEA=${FOVEA:-target/release/fovea}
PYTHON=${PYTHON:-python3}
DATA_DIR=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
DURATION=${DURATION:-15s}
CONCURRENCY=${CONCURRENCY:-"1 8 64"}
OUT=${OUT:-artifacts/bench-serve}
PORT_FOVEA=${PORT_FOVEA:-18080}
PORT_REF=${PORT_REF:-18081}

[ -x "$FOVEA" ] || { echo "no fovea binary at $FOVEA: run cargo build --release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "no wrk: apt-get install wrk" >&2; exit 2; }
"$PYTHON" -c "import torch, fastapi, uvicorn, safetensors, PIL" 2>/dev/null ||
  { echo "$PYTHON lacks torch, fastapi, uvicorn, safetensors or pillow (or set PYTHON)" >&2; exit 2; }
mkdir -p "$OUT"

# the request: the first Fashion-MNIST test image, as a PNG
"$PYTHON" - "$DATA_DIR" "$OUT/image.png" <<'PY'
import sys
sys.path.insert(0, "bench")
from PIL import Image
import pytorch_reference as ref
img = ref.read_idx(ref.find(sys.argv[1], "t10k-images-idx3-ubyte"))[0]
Image.fromarray(img.numpy(), mode="L").save(sys.argv[2])
PY
cat > "$OUT/post.lua" <<LUA
local f = io.open("$OUT/image.png", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
LUA
"$FOVEA" export "$RUN" --format safetensors --out "$OUT/model.safetensors" >&2

wait_for() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.2; done; echo "no server on port $1" >&2; exit 1; }

measure() { # name port
  for c in $CONCURRENCY; do
    wrk -t 1 -c "$c" -d 3s -s "$OUT/post.lua" "http://127.0.0.1:$2/predict" >/dev/null  # warm-up
    wrk -t 1 -c "$c" -d "$DURATION" --latency -s "$OUT/post.lua" "http://127.0.0.1:$2/predict" \
      > "$OUT/$1-c$c.txt"
    rps=$(awk '/Requests\/sec/ {print $2}' "$OUT/$1-c$c.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$OUT/$1-c$c.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$OUT/$1-c$c.txt")
    errors=$(awk '/Non-2xx/ {print $NF}' "$OUT/$1-c$c.txt")
    echo "$1 $c $rps $p50 $p99 ${errors:-0}" | tee -a "$OUT/results.txt"
  done
}

: > "$OUT/results.txt"
"$FOVEA" serve "$RUN" --port "$PORT_FOVEA" > "$OUT/fovea-serve.log" 2>&1 &
pid=$!
wait_for "$PORT_FOVEA"
measure fovea "$PORT_FOVEA"
kill -TERM "$pid"; wait "$pid"

"$PYTHON" bench/serve_reference.py "$OUT/model.safetensors" --port "$PORT_REF" > "$OUT/reference.log" 2>&1 &
pid=$!
wait_for "$PORT_REF"
measure fastapi "$PORT_REF"
kill -TERM "$pid"; wait "$pid" || true

echo
echo "server concurrency requests/s p50 p99 non-2xx"
cat "$OUT/results.txt"
awk '{rps[$1" "$2]=$3} END {for (k in rps) if (k ~ /^fovea/) {split(k, a, " "); r = rps["fastapi " a[2]]; if (r > 0) printf "concurrency %s: fovea / fastapi = %.2fx\n", a[2], rps[k] / r}}' "$OUT/results.txt" | sort -t: -k1,1n
