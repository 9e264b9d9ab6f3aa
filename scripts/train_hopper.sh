#!/usr/bin/env bash
# The pipeline that produced the shipped model (diffuser_ros/models/hopper), end to end.
# Every step resumes where it stopped; RUN holds the (large) intermediate files.
# Usage: scripts/train_hopper.sh [RUN]   (default RUN=runs/hopper)
set -euo pipefail
RUN=${1:-runs/hopper}
BIN=${BIN:-.venv/bin}
CHANNELS=${CHANNELS:-16,32,64,128}
STEPS=${STEPS:-200000}          # the shipped v0.3 stopped at 64k (diffusion) / 58k (value); see its MODEL_CARD
GRAD_ACCUM=${GRAD_ACCUM:-1}      # shipped v0.3: 32 windows a step; the original (and the CLI default) is 2
SAC_STEPS=${SAC_STEPS:-100000}
SAC_SEED=${SAC_SEED:-2}          # seed 0 stalled at ~350 return for 40k steps; seed 2 did not
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

# 1. behaviour policy (SB3 SAC on Hopper-v5) and the datasets (D4RL layout)
"$BIN/diffuser-ros-behaviour" train --out "$RUN/sac" --steps "$SAC_STEPS" --seed "$SAC_SEED" \
    --eval-every 5000
# "medium": the first evaluated policy reaching a third of expert return (as D4RL's)
MEDIUM_POLICY=$("$BIN/diffuser-ros-behaviour" pick --run "$RUN/sac")
"$BIN/diffuser-ros-behaviour" record --policy "$MEDIUM_POLICY" \
    --out "$RUN/data/hopper-medium.hdf5" --transitions 1000000 --seed 10000
"$BIN/diffuser-ros-behaviour" replay --buffer "$RUN/sac/replay_buffer.pkl" \
    --out "$RUN/data/hopper-medium-replay.hdf5" --training-steps "$SAC_STEPS"

# 2. diffusion model and value function, side by side (one core each on a CPU)
for model in diffusion value; do
  "$BIN/diffuser-ros-train" "$model" --dataset "$RUN/data/hopper-medium.hdf5" --out "$RUN/train" \
      --channels "$CHANNELS" --batch-size 32 --grad-accum "$GRAD_ACCUM" --steps "$STEPS" \
      --checkpoint-every 2000 --threads 1 &
done
wait

# 3. export with the shipped default settings (the realtime preset)
"$BIN/diffuser-ros-train" export --out "$RUN/train" --dest diffuser_ros/models/hopper \
    --defaults '{"n_candidates": 16, "n_guide_steps": 1, "warm_start": true, "warm_start_steps": 4}'

# 4. the command value (speed commands, docs/commands.md): the same windows and normaliser, the
#    rewards relabelled for commanded speeds 1-4 m/s; then added to the planner folder
"$BIN/diffuser-ros-train" command_value --dataset "$RUN/data/hopper-medium.hdf5" \
    --out "$RUN/train" --normalizer diffuser_ros/models/hopper/normalizer.json \
    --channels "$CHANNELS" --batch-size 32 --grad-accum 1 --steps 40000 --discount 0.99 \
    --command-low 1.0 --command-high 4.0 --reward-width 0.5 --checkpoint-every 2000 --threads 1
"$BIN/diffuser-ros-train" export-command-value --out "$RUN/train" --dest diffuser_ros/models/hopper
