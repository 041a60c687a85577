#!/usr/bin/env bash
# The demo: the whole toolkit and the reference model on synthetic scenes, on two CPU cores
# (measured: 12.5-15 min on an idle 2-core machine, of which 9.5-11 min training; see
# benchmark/README.md).
#
#   scripts/demo.sh OUT_DIR [BIN_DIR]
#
# OUT_DIR receives everything: raw/ (upstream-format scenes), data/ (canonical dataset),
# show_<id>.png, model/ (training directory), submissions/, logs/ (each prediction's
# output), scores/, results/ (scored rows next to the published ones) and leaderboard/.
# BIN_DIR holds ppp, ppp-baseline and python (default: .venv/bin). Running it again reuses
# what is there: training resumes or is skipped, submissions and scored rows are replaced.
#
# Sizes (environment): DEMO_TRAIN_IMAGES (480), DEMO_VAL_IMAGES (80), DEMO_TRAIN_ARGS
# (more options of `ppp-baseline train`, e.g. "--fcn-steps 100" to try it fast),
# DEMO_JOBS (processes at once, 2: the detector trains beside the other stages, and the
# predictions run two at a time) and DEMO_THREADS (torch threads per process, 1). Separate
# single-threaded processes use two cores without waiting for each other; two threads in
# one process that shares its cores with others run several times slower.
set -euo pipefail

out=${1:?usage: scripts/demo.sh OUT_DIR [BIN_DIR]}
bin=${2:-.venv/bin}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
train_images=${DEMO_TRAIN_IMAGES:-480}
val_images=${DEMO_VAL_IMAGES:-80}
threads=${DEMO_THREADS:-1}
jobs=${DEMO_JOBS:-2}
read -r -a train_args <<< "${DEMO_TRAIN_ARGS:-}"
start=$SECONDS

step() { printf '\n== %s (%d s)\n' "$1" $((SECONDS - start)); }

step "synthetic scenes: $train_images train + $val_images val images of 320x240"
total=$((train_images + val_images))
"$bin/ppp" synth --out "$out/raw" --images "$total" --seed 0 --workers "$jobs" \
    --val-fraction "$("$bin/python" -c "print($val_images / $total)")"

step "canonical dataset"
"$bin/ppp" prepare "$out/raw" "$out/data" --workers "$jobs" --quiet
"$bin/ppp" info "$out/data"
first_val=$("$bin/python" -c "
from pascal_person_pose.dataset import Dataset
print(Dataset('$out/data', 'val').images[0]['voc_id'])")
"$bin/ppp" show "$out/data" "$first_val" --out "$out/show_$first_val.png"

step "training the reference model (tiny config)"
parallel=()
if ((jobs > 1)); then parallel=(--parallel-detector); fi
"$bin/ppp-baseline" train --config tiny --data "$out/data" --out "$out/model" \
    --threads "$threads" --quiet ${parallel[@]+"${parallel[@]}"} \
    ${train_args[@]+"${train_args[@]}"}

mkdir -p "$out/results" "$out/scores" "$out/logs"
cp "$repo"/benchmark/results/*.json "$out/results/"

# name | method | command and options (ppp-baseline predict, or trivial)
variants=(
    "full-image|Reference model, tiny (full image)|predict --full-image"
    "final|Reference model, tiny (final)|predict"
    "wo-seg|Reference model, tiny (w/o seg)|predict --no-segment-features"
    "wo-pose|Reference model, tiny (w/o pose)|predict --no-pose-refinement"
    "trivial|Mean pose at boxes, all background|trivial"
)

# One variant: its submission, validated, scored into scores/ and results/.
variant() {
    local name=$1 method=$2 flags
    read -r -a flags <<< "$3"
    "$bin/ppp-baseline" "${flags[@]}" --checkpoint "$out/model" --data "$out/data" \
        --split val --out "$out/submissions/$name" --method "$method" --threads "$threads" \
        --quiet
    "$bin/ppp" validate "$out/data" "$out/submissions/$name"
    "$bin/ppp" score "$out/data" "$out/submissions/$name" --json "$out/scores/$name.json" \
        --add-to "$out/results" --method "$method (synthetic)" --replace
}

step "predictions, $jobs at a time (trivial: the mean pose at the detector's boxes, no parts)"
pids=()
names=()
for entry in "${variants[@]}"; do
    IFS='|' read -r name method command <<< "$entry"
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    variant "$name" "$method" "$command" > "$out/logs/$name.log" 2>&1 &
    pids+=($!)
    names+=("$name")
done
failed=0
for i in "${!pids[@]}"; do
    status=0
    wait "${pids[$i]}" || status=$?
    printf '\n-- %s\n' "${names[$i]}"
    cat "$out/logs/${names[$i]}.log"
    if ((status)); then failed=1; fi
done
if ((failed)); then echo "demo: a prediction failed (its log is above)" >&2; exit 1; fi

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
