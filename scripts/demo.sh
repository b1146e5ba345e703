#!/usr/bin/env bash
# The demo (`make demo`): a synthetic drone flight, end to end, offline, in a few minutes on 2 CPU cores.
#   1. make-sample-bag: render a flight bag (camera + detections + ground-truth viewpoints) and a
#      labelled folder-per-class crop set with the same renderer
#   2. train: a viewpoint head on those crops (backbone features cached once)
#   3. replay: the node's pipeline over the bag -> output bag with /viewpoints + evaluation report
# Everything goes to demo_output/ (git-ignored). Sizes can be changed through the environment:
#   DEMO_FRAMES (60)  DEMO_WIDTH (1280)  DEMO_HEIGHT (720)  DEMO_CROPS_PER_CLASS (24)  DEMO_EPOCHS (30)
#   DEMO_SIZE (small)  DEMO_AUG_VIEWS (2)  DEMO_BACKBONE_WEIGHTS (a DINOv2 weights file: real features)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
OUT="${DEMO_OUTPUT:-$REPO/demo_output}"
FRAMES="${DEMO_FRAMES:-60}"
WIDTH="${DEMO_WIDTH:-1280}"
HEIGHT="${DEMO_HEIGHT:-720}"
CROPS_PER_CLASS="${DEMO_CROPS_PER_CLASS:-24}"
EPOCHS="${DEMO_EPOCHS:-30}"
SIZE="${DEMO_SIZE:-small}"
AUG_VIEWS="${DEMO_AUG_VIEWS:-2}"
WEIGHTS="${DEMO_BACKBONE_WEIGHTS:-}"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "demo: no virtual environment at $VENV; run 'make setup' (or 'make demo', which does it) first" >&2
  exit 1
fi
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export PYTHONUNBUFFERED=1
cd "$REPO"
pc() { "$VENV/bin/python" -m pose_classifier_ros.cli "$@"; }
step() { printf '\n=== %s ===\n' "$*"; }

rm -rf "$OUT"
mkdir -p "$OUT"
started=$SECONDS

step "1/3 synthetic flight: $FRAMES frames ${WIDTH}x${HEIGHT} + $((CROPS_PER_CLASS * 8)) labelled training crops"
pc make-sample-bag "$OUT/sample" --frames "$FRAMES" --width "$WIDTH" --height "$HEIGHT" --seed 0 \
   --crops-dir "$OUT/crops" --crops-per-class "$CROPS_PER_CLASS"

step "2/3 train a viewpoint head on the crops (DINOv2 ViT-$SIZE backbone, features cached)"
if [[ -n "$WEIGHTS" ]]; then
  backbone_args=(--backbone-weights "$WEIGHTS")
  echo "backbone: pretrained DINOv2 weights from $WEIGHTS"
else
  backbone_args=(--random-backbone)
  cat <<'EOF'
NOTE: the backbone has RANDOM weights. No DINOv2 weights can be downloaded on this machine, so the
      head learns from random-projection features and accuracy is far below what real features give.
      With real weights (e.g. dinov2_vits14_pretrain.pth from facebookresearch/dinov2):
        DEMO_BACKBONE_WEIGHTS=/path/to/dinov2_vits14_pretrain.pth make demo
      or pass --backbone-weights FILE to `pose-classifier train` / `pose-classifier replay`.
EOF
fi
pc train --data "$OUT/crops" --out "$OUT/run" --size "$SIZE" "${backbone_args[@]}" --epochs "$EPOCHS" \
   --cache-features --aug-views "$AUG_VIEWS" --seed 0 --device cpu --workers 0

step "3/3 replay the flight through the node's pipeline and evaluate against the ground truth"
pc replay "$OUT/sample/flight" --checkpoint "$OUT/run/best_pose_model.pth" \
   --ground-truth "$OUT/sample/ground_truth.csv" --params "$REPO/config/pose_classifier.yaml" \
   --out "$OUT/replayed" --report-dir "$OUT/report" --best-views "$OUT/best_views"

step "done in $((SECONDS - started)) s"
cat <<EOF
input bag (MCAP):   $OUT/sample/flight   (/camera/image_raw, /detections, /ground_truth/viewpoints)
ground truth:       $OUT/sample/ground_truth.csv
training crops:     $OUT/crops/<class>/
trained model:      $OUT/run/best_pose_model.pth
output bag (MCAP):  $OUT/replayed        (input topics + /viewpoints, /annotations, /track_summaries)
best views:         $OUT/best_views/<track>/{left,right,best}.jpg, sightings.csv
report:             $OUT/report/report.txt, metrics.json
figures:            $OUT/report/confusion_matrix.png, confusion_matrix_smoothed.png, track_timeline.png, contact_sheet.png
Look at it in Foxglove: open $OUT/replayed/*.mcap, then Layout -> Import from file -> config/foxglove_layout.json
Play the flight live for the node (use_sim_time):  $VENV/bin/python -m pose_classifier_ros.cli play $OUT/sample/flight --clock
EOF
if [[ -z "$WEIGHTS" ]]; then
  echo "(random backbone weights: the numbers above show that the pipeline works, not how well DINOv2 does)"
fi
