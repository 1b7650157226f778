#!/bin/bash
# Ablation pair for the model card: the full recipe against the same without the negative pool, from
# scratch, seed 0, side by side on one machine (1 thread each, the same 36-minute wall-clock budget), then
# both on the test split with the peer (reported only: nothing is chosen on it). Needs vbg[train] and ../shared.
#   bash benchmarks/ablation_pair.sh      # writes runs/abl-*, runs/abl-test.md
set -e
cd "$(dirname "$0")/.."
mkdir -p runs
S=../shared/data
COMMON=(--data $S/person-seg --arch unet-lite-m --size 256x144 --size 288x160 --size 224x224 --val-size 288x160
  --negatives $S/scenes/indoor --negatives $S/copy-paste/scenes --cutouts $S/copy-paste/people
  --distill "$S/unlabelled/streets/part_B-*" --distill ../shared/videos/webcam
  --teacher benchmarks/peers/mediapipe_selfie.json --teacher benchmarks/peers/mediapipe_landscape.json
  --lr 2e-3 --epochs 2000 --max-minutes 36 --seed 0 --threads 1 --workers 1 --no-progress)
python -m vbg train --out runs/abl-all "${COMMON[@]}" > runs/abl-all.log 2>&1 &
python -m vbg train --out runs/abl-no-negatives "${COMMON[@]}" --mix labelled=0.5,paste=0.15,teacher=0.2 \
  > runs/abl-no-negatives.log 2>&1 &
wait
echo "$(date -u +%H:%M) trained"
mkdir -p runs/abl-export
for r in abl-all abl-no-negatives; do
  python -m vbg export runs/$r/best.pt --size 288x160 --out runs/abl-export/$r.onnx --no-fp16 --description "$r" >> runs/abl-export/export.log 2>&1
done
python benchmarks/bench_models.py --model runs/abl-export/abl-all.json --model runs/abl-export/abl-no-negatives.json \
  --json runs/abl-test.json > runs/abl-test.md 2> runs/abl-test.log
echo "$(date -u +%H:%M) test table rc=$?"
