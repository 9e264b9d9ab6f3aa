#!/usr/bin/env bash
# The pipeline that produces a robot's shipped model (diffuser_ros/models/ROBOT), end to end:
# behaviour policy -> "medium" dataset -> diffusion model + value function -> export.
# Every step resumes where it stopped (rerun the same command); RUN holds the large
# intermediate files. Per-robot settings are the variables below (scripts/train_hopper.sh and
# scripts/train_walker2d.sh give the ones each shipped model was made with).
# Usage: scripts/train_robot.sh ROBOT [RUN]   (default RUN=runs/ROBOT)
set -euo pipefail
ROBOT=${1:?usage: scripts/train_robot.sh ROBOT [RUN]}
RUN=${2:-runs/$ROBOT}
BIN=${BIN:-.venv/bin}
CHANNELS=${CHANNELS:-16,32,64,128}
STEPS=${STEPS:-200000}           # diffusion / value steps to train to (stop and resume any time)
VALUE_STEPS=${VALUE_STEPS:-$STEPS}
VALUE_DISCOUNT=${VALUE_DISCOUNT:-0.997}  # discount of the value targets (the original's 0.997)
GRAD_ACCUM=${GRAD_ACCUM:-1}
SAC_STEPS=${SAC_STEPS:-300000}
SAC_SEED=${SAC_SEED:-0}
SAC_STOP=${SAC_STOP:-medium}     # end SAC at the first policy reaching a third of expert ("" = run all)
DATA_RETURN=${DATA_RETURN:-}     # record the dataset from the first policy reaching this evaluation
                                 # return ("" = a third of expert)
REPLAY=${REPLAY:-0}              # 1: also write the medium-replay dataset from SAC's buffer
DEFAULTS=${DEFAULTS:-'{"n_candidates": 16, "n_guide_steps": 1, "warm_start": true, "warm_start_steps": 4}'}
DEST=${DEST:-diffuser_ros/models/$ROBOT}
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
ENV_ID=$("$BIN/python" -c "from diffuser_ros.robots import robot; print(robot('$ROBOT').env_id)")

# 1. behaviour policy (SB3 SAC) and the "medium" dataset (D4RL layout): rolled out from the
#    first evaluated policy reaching a third of expert return (D4RL's rule), or DATA_RETURN
"$BIN/diffuser-ros-behaviour" train --robot "$ROBOT" --out "$RUN/sac" --steps "$SAC_STEPS" \
    --seed "$SAC_SEED" --eval-every 5000 ${SAC_STOP:+--stop-at-return "$SAC_STOP"}
MEDIUM_POLICY=$("$BIN/diffuser-ros-behaviour" pick --robot "$ROBOT" --run "$RUN/sac" \
    ${DATA_RETURN:+--min-return "$DATA_RETURN"})
DATASET="$RUN/data/$ROBOT-medium.hdf5"
[ -f "$DATASET" ] || "$BIN/diffuser-ros-behaviour" record --robot "$ROBOT" \
    --policy "$MEDIUM_POLICY" --out "$DATASET" --transitions 1000000 --seed 10000
if [ "$REPLAY" = 1 ]; then
  "$BIN/diffuser-ros-behaviour" replay --robot "$ROBOT" --buffer "$RUN/sac/replay_buffer.pkl" \
      --out "$RUN/data/$ROBOT-medium-replay.hdf5" --training-steps "$SAC_STEPS"
fi

# 2. diffusion model and value function, side by side (one core each on a CPU)
for model in diffusion value; do
  steps=$STEPS; extra=()
  [ "$model" = value ] && steps=$VALUE_STEPS && extra=(--discount "$VALUE_DISCOUNT")
  "$BIN/diffuser-ros-train" "$model" --dataset "$DATASET" --out "$RUN/train" \
      --channels "$CHANNELS" --batch-size 32 --grad-accum "$GRAD_ACCUM" --steps "$steps" \
      --checkpoint-every 2000 --threads 1 "${extra[@]}" &
done
wait

# 3. export with the shipped default settings (the realtime preset)
"$BIN/diffuser-ros-train" export --out "$RUN/train" --dest "$DEST" --env-id "$ENV_ID" \
    --defaults "$DEFAULTS"
