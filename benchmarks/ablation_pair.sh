#!/bin/bash
# Ablation pair for the model card: two variants of the recipe, from scratch, seed 0, side by side on one
# machine (1 thread each, the same 36-minute wall-clock budget), then both on the test split with the peer
# (reported only: nothing is chosen on it). Needs vbg[train] and ../shared.
#   bash benchmarks/ablation_pair.sh all no-negatives     # (re)writes runs/abl-<name>/, runs/abl-test-<a>-<b>.md
# Variants: all, no-negatives, no-paste, no-teachers, no-mining, labelled-only; all-seed1 (the same recipe, a
# second seed: the noise between runs), bg-hue (background recolouring added), bg-crops (the labelled
# photos' person-free rectangles added to the negatives) and distract (colour distractors added: background
# regions painted red or skin-coloured). A removed pool is dropped
# from the default mix (labelled=0.5,negative=0.15,paste=0.15,teacher=0.2) and the rest keep their ratios.
set -e
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 VARIANT VARIANT" >&2; exit 2; }
mkdir -p runs/abl-export
S=../shared/data
BASE=(--data $S/person-seg --arch unet-lite-m --size 256x144 --size 288x160 --size 224x224 --val-size 288x160
  --negatives $S/scenes/indoor --negatives $S/copy-paste/scenes --cutouts $S/copy-paste/people
  --lr 2e-3 --epochs 2000 --max-minutes 36 --seed 0 --threads 1 --workers 1 --no-progress)
TEACH=(--distill "$S/unlabelled/streets/part_B-*" --distill ../shared/videos/webcam
  --teacher benchmarks/peers/mediapipe_selfie.json --teacher benchmarks/peers/mediapipe_landscape.json)
variant() {  # sets EXTRA to the extra arguments of one variant
  case $1 in
    all) EXTRA=("${TEACH[@]}") ;;
    no-negatives) EXTRA=("${TEACH[@]}" --mix labelled=0.5,paste=0.15,teacher=0.2) ;;
    no-paste) EXTRA=("${TEACH[@]}" --mix labelled=0.5,negative=0.15,teacher=0.2) ;;
    no-teachers) EXTRA=() ;;  # no --distill: the teacher pool has no data and drops out
    no-mining) EXTRA=("${TEACH[@]}" --mine-every 0) ;;
    labelled-only) EXTRA=(--mix labelled=1) ;;
    all-seed1) EXTRA=("${TEACH[@]}" --seed 1) ;;  # the run-to-run noise of the recipe itself
    bg-hue) EXTRA=("${TEACH[@]}" --augment '{"bg_hue_p": 0.3}') ;;  # an addition, not an ablation
    bg-crops) EXTRA=("${TEACH[@]}" --bg-crops) ;;  # an addition: the photos' person-free crops as negatives
    distract) EXTRA=("${TEACH[@]}" --augment '{"distract_p": 0.3}') ;;  # an addition: red/skin background regions
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}
for v in "$1" "$2"; do variant "$v"; done
[ "$1" != "$2" ] || { echo "the two variants must differ" >&2; exit 2; }
pids=()
for v in "$1" "$2"; do
  variant "$v"
  rm -rf "runs/abl-$v"  # a fresh run: a failed one must not leave an old best.pt to be benchmarked
  python -m vbg train --out "runs/abl-$v" "${BASE[@]}" "${EXTRA[@]}" > "runs/abl-$v.log" 2>&1 &
  pids+=($!)
done
for i in 0 1; do
  wait "${pids[$i]}" || { echo "training failed: see runs/abl-${*:$((i + 1)):1}.log" >&2; wait; exit 1; }
done
echo "$(date -u +%H:%M) trained"
for v in "$1" "$2"; do
  python -m vbg export "runs/abl-$v/best.pt" --size 288x160 --out "runs/abl-export/abl-$v.onnx" --no-fp16 \
    --description "abl-$v" >> runs/abl-export/export.log 2>&1
done
rc=0
python benchmarks/bench_models.py --model "runs/abl-export/abl-$1.json" --model "runs/abl-export/abl-$2.json" \
  --json "runs/abl-test-$1-$2.json" > "runs/abl-test-$1-$2.md" 2> "runs/abl-test-$1-$2.log" || rc=$?
echo "$(date -u +%H:%M) test table rc=$rc"
exit $rc
