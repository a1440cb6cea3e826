#!/usr/bin/env bash
# fovea against PyTorch on this machine, back to back: training and inference throughput,
# single-image latency and peak memory per model, the ratio, and the first 300 steps' losses
# from the same data order (do both frameworks compute the same thing?).
#
#   bench/compare.sh                  # every kind trained by gradient descent, on Fashion-MNIST
#   MODELS="cnn" STEPS=100 bench/compare.sh
#
# Needs: a built fovea (cargo build --release), Fashion-MNIST (apt-get install
# dataset-fashion-mnist, or DATA_DIR=...), and a Python with torch (PYTHON=..., default python3;
# `pip install torch`). Run it on an otherwise idle machine: the two frameworks take turns.
set -euo pipefail
cd "$(dirname "$0")/.."

FOVEA=${FOVEA:-target/release/fovea}
PYTHON=${PYTHON:-python3}
DATA_DIR=${DATA_DIR:-/usr/share/datasets/fashion-mnist}
MODELS=${MODELS:-"cnn rnn cnn-rnn cnn-lif gan restore"}
STEPS=${STEPS:-50}
REPEATS=${REPEATS:-3}
LOSS_STEPS=${LOSS_STEPS:-300}
THREADS=${THREADS:-$(nproc)}
OUT=${OUT:-artifacts/bench-vs-pytorch}

[ -x "$FOVEA" ] || { echo "no fovea binary at $FOVEA: run cargo build --release" >&2; exit 2; }
"$PYTHON" -c "import torch" 2>/dev/null || { echo "$PYTHON has no torch: pip install torch (or set PYTHON)" >&2; exit 2; }
mkdir -p "$OUT"

for m in $MODELS; do
  # the GAN at its config's learning rate, the others at 0.001; the restorer repairs noise
  config=config/$m.toml lr=0.001
  case $m in
    gan) lr=0.0002 ;;
    restore) config=config/restore-noise.toml ;;
  esac
  echo "== $m: fovea" >&2
  "$FOVEA" bench --config "$config" --set "data.path=\"$DATA_DIR\"" --set data.val_fraction=0 \
    --set data.augment.shift=0 --set train.batch_size=64 --set train.lr=$lr \
    --steps "$STEPS" --repeats "$REPEATS" --loss-steps "$LOSS_STEPS" \
    --out "$OUT" --name "fovea-$m" >&2
  echo "== $m: pytorch" >&2
  "$PYTHON" bench/pytorch_reference.py --model "$m" --data-dir "$DATA_DIR" --threads "$THREADS" \
    --batch 64 --lr $lr --steps "$STEPS" --repeats "$REPEATS" --loss-steps "$LOSS_STEPS" \
    --json "$OUT/pytorch-$m.json" >/dev/null
done

"$PYTHON" - "$OUT" $MODELS <<'EOF'
import json, sys
out, models = sys.argv[1], sys.argv[2:]
print(f"{'model':8} {'params f/pt':>17} {'train img/s f / pt':>20} {'ratio':>6} {'infer img/s f / pt':>20} "
      f"{'ratio':>6} {'latency ms f / pt':>18} {'peak MiB f / pt':>16} {'ratio':>6}")
curves = []
for m in models:
    f = json.load(open(f"{out}/fovea-{m}/bench.json"))["results"][0]
    p = json.load(open(f"{out}/pytorch-{m}.json"))
    print(f"{m:8} {f['parameters']:>8}/{p['parameters']:<8} "
          f"{f['train_images_per_sec']:>9.0f} / {p['train_images_per_sec']:<8.0f} "
          f"{f['train_images_per_sec'] / p['train_images_per_sec']:>6.2f} "
          f"{f['infer_images_per_sec']:>9.0f} / {p['infer_images_per_sec']:<8.0f} "
          f"{f['infer_images_per_sec'] / p['infer_images_per_sec']:>6.2f} "
          f"{f['latency_ms_median']:>8.2f} / {p['latency_ms_median']:<7.2f} "
          f"{f['peak_rss_mib']:>6.0f} / {p['peak_rss_mib']:<6.0f} "
          f"{f['peak_rss_mib'] / p['peak_rss_mib']:>6.2f}")
    curves.append((m, f["loss_curve"], p["loss_curve"]))
print("\nmean training loss over steps (same data order, fresh weights; fovea / pytorch):")
for m, fc, pc in curves:
    if not fc or not pc:
        continue
    n = min(len(fc), len(pc))
    w = max(n // 6, 1)
    cells = [f"{s + 1}-{min(s + w, n)}: {sum(fc[s:s + w]) / len(fc[s:s + w]):.3f} / "
             f"{sum(pc[s:s + w]) / len(pc[s:s + w]):.3f}" for s in range(0, n, w)]
    print(f"{m:8} " + "  ".join(cells))
EOF
