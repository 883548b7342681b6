#!/usr/bin/env bash
# OpenRLHF with sigreward as the remote reward model (OpenRLHF 0.8 and 0.11 tested).
# OpenRLHF cannot send a step, so the server derives it from the run's samples_per_step
# (rollout_batch_size * n_samples_per_prompt), counted in its store (samples_per_prompt lets it
# recognise OpenRLHF's resent requests exactly); or put &step=N in the URL
# when you drive steps yourself. Each 0.11 rollout sends its own request, so group references
# cannot see a whole group: use "first_seen".
# A server started with --api-key: OpenRLHF cannot send headers, so the key goes in the URL
# (accepted on /get_reward only; see docs/integrations.md for the trade-off).
set -euo pipefail
URL=${SIGREWARD_URL:-http://127.0.0.1:8000}
RUN=${SIGREWARD_RUN_ID:-openrlhf-1}
KEY=${SIGREWARD_API_KEY:-}
AUTH=()
KEY_PARAM=""
if [ -n "$KEY" ]; then
  AUTH=(-H "Authorization: Bearer $KEY")
  KEY_PARAM="&key=$KEY"
fi
ROLLOUT_BATCH=128
N_SAMPLES=8

curl -sf -X PUT "$URL/v1/runs/$RUN" "${AUTH[@]}" -H 'Content-Type: application/json' \
  -d "{\"significance\": \"classifier\", \"reference\": \"first_seen\", \
       \"samples_per_step\": $((ROLLOUT_BATCH * N_SAMPLES)), \"samples_per_prompt\": $N_SAMPLES}"

# OpenRLHF 0.8.x consumers that choke on extra_logs: append &extra_logs=false to the URL.
python -m openrlhf.cli.train_ppo_ray \
  --pretrain Qwen/Qwen2.5-Math-1.5B \
  --remote_rm_url "$URL/get_reward?run_id=$RUN$KEY_PARAM" \
  --prompt_data your/math-dataset --input_key question --label_key answer \
  --rollout_batch_size $ROLLOUT_BATCH --n_samples_per_prompt $N_SAMPLES \
  --advantage_estimator group_norm \
  "$@"
