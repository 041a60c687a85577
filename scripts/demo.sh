#!/usr/bin/env bash
# The demo: the whole toolkit and the reference model on synthetic scenes, on one CPU core
# (measured: 21 min on an idle 2-core machine, of which 14.5 min training; see
# benchmark/README.md).
#
#   scripts/demo.sh OUT_DIR [BIN_DIR]
#
# OUT_DIR receives everything: raw/ (upstream-format scenes), data/ (canonical dataset),
# show_<id>.png, model/ (training directory), submissions/, scores/, results/ (scored rows
# next to the published ones) and leaderboard/. BIN_DIR holds ppp, ppp-baseline and python
# (default: .venv/bin). Running it again reuses what is there: training resumes or is
# skipped, submissions and scored rows are replaced.
#
# Sizes (environment): DEMO_TRAIN_IMAGES (160), DEMO_VAL_IMAGES (80), DEMO_TRAIN_ARGS
# (more options of `ppp-baseline train`, e.g. "--fcn-steps 100" to try it fast) and
# DEMO_THREADS (torch threads, 1): 2 trains ~1.6x faster on two idle cores, but on a
# machine others share, two threads waiting for each other run several times slower.
set -euo pipefail

out=${1:?usage: scripts/demo.sh OUT_DIR [BIN_DIR]}
bin=${2:-.venv/bin}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
train_images=${DEMO_TRAIN_IMAGES:-160}
val_images=${DEMO_VAL_IMAGES:-80}
threads=${DEMO_THREADS:-1}
read -r -a train_args <<< "${DEMO_TRAIN_ARGS:-}"
start=$SECONDS

step() { printf '\n== %s (%d s)\n' "$1" $((SECONDS - start)); }

step "synthetic scenes: $train_images train + $val_images val images of 320x240"
total=$((train_images + val_images))
"$bin/ppp" synth --out "$out/raw" --images "$total" --seed 0 --workers "$threads" \
    --val-fraction "$("$bin/python" -c "print($val_images / $total)")"

step "canonical dataset"
"$bin/ppp" prepare "$out/raw" "$out/data" --workers "$threads" --quiet
"$bin/ppp" info "$out/data"
first_val=$("$bin/python" -c "
from pascal_person_pose.dataset import Dataset
print(Dataset('$out/data', 'val').images[0]['voc_id'])")
"$bin/ppp" show "$out/data" "$first_val" --out "$out/show_$first_val.png"

step "training the reference model (tiny config)"
"$bin/ppp-baseline" train --config tiny --data "$out/data" --out "$out/model" \
    --threads "$threads" --quiet ${train_args[@]+"${train_args[@]}"}

mkdir -p "$out/results" "$out/scores"
cp "$repo"/benchmark/results/*.json "$out/results/"

# name | method | options of `ppp-baseline predict`
variants=(
    "final|Reference model, tiny (final)|"
    "wo-seg|Reference model, tiny (w/o seg)|--no-segment-features"
    "wo-pose|Reference model, tiny (w/o pose)|--no-pose-refinement"
    "full-image|Reference model, tiny (full image)|--full-image"
)
for variant in "${variants[@]}"; do
    IFS='|' read -r name method options <<< "$variant"
    step "predict: $method"
    read -r -a flags <<< "$options"
    "$bin/ppp-baseline" predict --checkpoint "$out/model" --data "$out/data" --split val \
        --out "$out/submissions/$name" --method "$method" --threads "$threads" --quiet \
        ${flags[@]+"${flags[@]}"}
    "$bin/ppp" validate "$out/data" "$out/submissions/$name"
    "$bin/ppp" score "$out/data" "$out/submissions/$name" --json "$out/scores/$name.json" \
        --add-to "$out/results" --method "$method (synthetic)" --replace
done

step "trivial baseline: mean pose at the detector's boxes, all-background parts"
"$bin/ppp-baseline" trivial --checkpoint "$out/model" --data "$out/data" --split val \
    --out "$out/submissions/trivial" --threads "$threads" --quiet
"$bin/ppp" validate "$out/data" "$out/submissions/trivial"
"$bin/ppp" score "$out/data" "$out/submissions/trivial" --json "$out/scores/trivial.json" \
    --add-to "$out/results" --method "Mean pose at boxes, all background (synthetic)" --replace

step "leaderboard"
"$bin/ppp" leaderboard "$out/results" --out "$out/leaderboard"
# Tables 1-3 of the scored rows, which have their own tables: their ground truth (the
# synthetic val split, named by its fingerprint) is not the papers'.
sed -n '/^## val split, ground truth/,/^### Table 4/p' "$out/leaderboard/leaderboard.md" \
    | sed '$d' | grep -v '^!\['
printf 'Scored rows are on synthetic scenes, published rows on the real val split: the\n'
printf 'leaderboard ranks them apart; compare the variants with each other.\n'
printf '\nDone in %d s. Leaderboard: %s/leaderboard/leaderboard.{md,html,csv} and plots;\n' \
    $((SECONDS - start)) "$out"
printf 'scores: %s/scores/*.json; submissions: %s/submissions/; model: %s/model/\n' \
    "$out" "$out" "$out"
