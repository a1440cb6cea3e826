#!/usr/bin/env bash
# fovea against PyTorch on this machine, in turns: training and inference throughput,
# single-image latency and peak memory per model, the ratio, and the first 300 steps' losses
# from the same data order (do both frameworks compute the same thing?).
#
#   bench/compare.sh                  # every kind trained by gradient descent, on Fashion-MNIST
#   MODELS="cnn" STEPS=100 ROUNDS=5 bench/compare.sh
#
# Each model runs ROUNDS times in turn, fovea then PyTorch, each a fresh process timing REPEATS
# rounds of STEPS steps (its median); a ratio is the median of the turns' ratios, so a drift of
# the machine's speed over minutes falls on both sides of each ratio alike.
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
REPEATS=${REPEATS:-1}
ROUNDS=${ROUNDS:-3}
LOSS_STEPS=${LOSS_STEPS:-300}
THREADS=${THREADS:-$(nproc)}
OUT=${OUT:-artifacts/bench-vs-pytorch}

[ -x "$FOVEA" ] || { echo "no fovea binary at $FOVEA: run cargo build --release" >&2; exit 2; }
"$PYTHON" -c "import torch" 2>/dev/null || { echo "$PYTHON has no torch: pip install torch (or set PYTHON)" >&2; exit 2; }
[ "$ROUNDS" -ge 1 ] 2>/dev/null || { echo "ROUNDS must be a whole number ≥ 1, not '$ROUNDS'" >&2; exit 2; }
mkdir -p "$OUT"

for m in $MODELS; do
  # the GAN at its config's learning rate, the others at 0.001; the restorer repairs noise
  config=config/$m.toml lr=0.001
  case $m in
    gan) lr=0.0002 ;;
    restore) config=config/restore-noise.toml ;;
  esac
  for r in $(seq 1 "$ROUNDS"); do
    # the loss curves once, in the first turn
    loss=0
    [ "$r" = 1 ] && loss=$LOSS_STEPS
    echo "== $m, turn $r of $ROUNDS: fovea" >&2
    "$FOVEA" bench --config "$config" --set "data.path=\"$DATA_DIR\"" --set data.val_fraction=0 \
      --set data.augment.shift=0 --set train.batch_size=64 --set train.lr=$lr \
      --steps "$STEPS" --repeats "$REPEATS" --loss-steps "$loss" \
      --out "$OUT" --name "fovea-$m-$r" >&2
    echo "== $m, turn $r of $ROUNDS: pytorch" >&2
    "$PYTHON" bench/pytorch_reference.py --model "$m" --data-dir "$DATA_DIR" --threads "$THREADS" \
      --batch 64 --lr $lr --steps "$STEPS" --repeats "$REPEATS" --loss-steps "$loss" \
      --json "$OUT/pytorch-$m-$r.json" >/dev/null
  done
done

"$PYTHON" - "$OUT" "$ROUNDS" $MODELS <<'EOF'
import json, statistics, sys
out, rounds, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median
print(f"{rounds} turns per model; img/s and MiB are medians over the turns, a ratio the median of "
      "the turns' ratios (its lowest and highest in brackets where there are several)")
print(f"{'model':8} {'params f/pt':>17} {'train img/s f / pt':>20} {'ratio':>18} {'infer img/s f / pt':>20} "
      f"{'ratio':>18} {'latency ms f / pt':>18} {'peak MiB f / pt':>16} {'ratio':>6}")
curves = []
for m in models:
    fs = [json.load(open(f"{out}/fovea-{m}-{r}/bench.json"))["results"][0] for r in range(1, rounds + 1)]
    ps = [json.load(open(f"{out}/pytorch-{m}-{r}.json")) for r in range(1, rounds + 1)]
    def both(key):
        return med(f[key] for f in fs), med(p[key] for p in ps)
    def ratio(key):
        rs = sorted(f[key] / p[key] for f, p in zip(fs, ps))
        spread = f" [{rs[0]:.2f}–{rs[-1]:.2f}]" if len(rs) > 1 else ""
        return f"{med(rs):.2f}{spread}"
    train, infer = both("train_images_per_sec"), both("infer_images_per_sec")
    latency, peak = both("latency_ms_median"), both("peak_rss_mib")
    print(f"{m:8} {fs[0]['parameters']:>8}/{ps[0]['parameters']:<8} "
          f"{train[0]:>9.0f} / {train[1]:<8.0f} {ratio('train_images_per_sec'):>18} "
          f"{infer[0]:>9.0f} / {infer[1]:<8.0f} {ratio('infer_images_per_sec'):>18} "
          f"{latency[0]:>8.2f} / {latency[1]:<7.2f} "
          f"{peak[0]:>6.0f} / {peak[1]:<6.0f} {peak[0] / peak[1]:>6.2f}")
    curves.append((m, fs[0]["loss_curve"], ps[0]["loss_curve"]))
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
