#!/usr/bin/env bash
# make docker-test: build the cryotune image and run every role of a cluster from it on this
# machine, each container on the host network:
#
#   PostgreSQL  the loopback server of scripts/postgres.sh (databases optuna and mlflow)
#   mlflow      mlflow server on that PostgreSQL, artifacts in the shared runs folder
#   ray-head    ray start --head, no CPUs of its own: the sweep driver runs here (docker exec)
#   worker-a    ray start --address HEAD, 2 CPUs; killed mid-trial
#   worker-b    a second worker container that joins after worker-a is killed
#   api         cryotune serve on the MLflow server, bearer token required
#
# The sweep (one pair, scheduler off so every trial trains every epoch) is submitted to the head
# with --address auto and the cluster stores; once a trial has checkpointed an epoch on worker-a,
# worker-a is killed and worker-b started. The sweep must still complete, and scripts/docker_check.py
# checks the records, the Optuna study in PostgreSQL, the MLflow runs, that every epoch ran on a
# worker container and none twice. Then the API must answer /best/glid with the token and refuse
# it without. Everything started here is removed at the end, pass or fail (dockerd too, when this
# script started it; CRYOTUNE_KEEP_DOCKERD=1 keeps it).
#
# Then docker-compose's turn (scripts/compose-stage.sh): docker/compose.yaml with
# docker/compose.host.yaml, its services up from the same image, a sweep and the API through them.
#
# Settings: see scripts/docker-lib.sh; CRYOTUNE_TEST_KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
source scripts/docker-lib.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cryotune-docker-test.XXXXXX")
chmod 755 "$WORK"
RUN_ID=$(basename "$WORK" | cut -d. -f2 | tr 'A-Z' 'a-z')
LABEL="cryotune-docker-test=$RUN_ID"
RUNS=$WORK/runs
DATA=$WORK/data
NAME=docker-smoke
EPOCHS=5
TRIALS=2
STARTED=$(date +%s)
PG_DIR=$WORK/postgres
PG=

cleanup() {
    local status=$?
    set +e
    log "cleaning up (exit $status)"
    local ids
    ids=$(dk ps -aq --filter "label=$LABEL" 2>/dev/null)
    if [[ -n "$ids" ]]; then
        if [[ $status -ne 0 ]]; then
            for id in $ids; do
                dk logs "$id" >"$WORK/container-$(dk inspect -f '{{.Name}}' "$id" | tr -d /).log" 2>&1
            done
        fi
        dk rm -f -v $ids >/dev/null
    fi
    if [[ -n "${COMPOSE_FILE_RUN:-}" ]]; then
        [[ $status -eq 0 ]] || compose logs --no-color >"$WORK/compose-services.log" 2>&1
        compose down -v --remove-orphans >/dev/null 2>&1
    fi
    [[ -z "$PG" ]] || bash scripts/postgres.sh stop "$PG_DIR"
    stop_dockerd
    if [[ $status -eq 0 && "${CRYOTUNE_TEST_KEEP:-}" != 1 ]]; then
        rm -rf "$WORK"
    else
        log "logs kept in $WORK"
    fi
    log "docker-test took $(($(date +%s) - STARTED)) s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_packages python3=python3
ensure_dockerd
t0=$(date +%s)
build_image
log "image $CRYOTUNE_IMAGE built in $(($(date +%s) - t0)) s, $(dk image inspect -f '{{.Size}}' "$CRYOTUNE_IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}')"

mkdir -p "$RUNS" "$DATA"
PG=$(bash scripts/postgres.sh start "$PG_DIR")
RAY_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
API_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
MLFLOW_PORT=$(free_port)
RAY_PORT=$(free_port)
API_PORT=$(free_port)
MLFLOW=http://127.0.0.1:$MLFLOW_PORT
OPTUNA=$PG/optuna

# Every container: host network, this run's label, the shared folders, Ray's token.
role() {
    local name=$1
    shift
    dk run -d --name "cryotune-$name-$RUN_ID" --label "$LABEL" --network host --shm-size 1g \
        -v "$RUNS:/runs" -v "$DATA:/data:ro" -v "$REPO/scripts:/check:ro" \
        -e RAY_AUTH_MODE=token -e "RAY_AUTH_TOKEN=$RAY_TOKEN" "$@" >/dev/null
}
in_role() {
    local name=$1
    shift
    dk exec -e RAY_AUTH_MODE=token -e "RAY_AUTH_TOKEN=$RAY_TOKEN" "cryotune-$name-$RUN_ID" "$@"
}
wait_for() {
    local what=$1 seconds=$2
    shift 2
    local i
    for i in $(seq "$((seconds * 2))"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what not ready in $seconds s"
}
http_status() {
    python3 - "$@" <<'EOF'
import sys, urllib.request, urllib.error
url, token = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.status); print(response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code)
EOF
}
ray_ports() {
    echo --dashboard-agent-listen-port "$(free_port)" --metrics-export-port "$(free_port)" \
        --min-worker-port 0 --max-worker-port 0 --disable-usage-stats
}

log "synthetic GLID, PostgreSQL at ${PG%%@*}@..., MLflow on :$MLFLOW_PORT, Ray on :$RAY_PORT"
dk run --rm --label "$LABEL" --network host -v "$DATA:/data" "$CRYOTUNE_IMAGE" \
    cryotune data synth glid --out /data/glid --tiles 16 --seed 0 >"$WORK/synth.log" 2>&1
cat >"$RUNS/$NAME.yaml" <<EOF
name: $NAME
models: [unet]
space:
  lr: {low: 1.0e-4, high: 3.0e-3}
scheduler: {kind: none, max_epochs: $EPOCHS}
budget: {trials: $TRIALS, retries: 1}
resources: {cpu: 1}
trial: {weights: random, batch_size: 4, crop_size: 32, max_steps_per_epoch: 2, val_every: 1}
EOF

role mlflow -e MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$CRYOTUNE_IMAGE" \
    mlflow server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
    --backend-store-uri "$PG/mlflow" --serve-artifacts --artifacts-destination /runs/mlartifacts
role ray-head "$CRYOTUNE_IMAGE" \
    ray start --head --block --node-ip-address 127.0.0.1 --port "$RAY_PORT" --num-cpus 0 \
    --num-gpus 0 --dashboard-host 127.0.0.1 --dashboard-port "$(free_port)" \
    --ray-client-server-port "$(free_port)" $(ray_ports)
wait_for "MLflow" 120 python3 -c "import urllib.request as u; u.urlopen('$MLFLOW/health', timeout=4)"
wait_for "Ray head" 120 in_role ray-head ray status --address "127.0.0.1:$RAY_PORT"
worker() {
    role "$1" "$CRYOTUNE_IMAGE" ray start --address "127.0.0.1:$RAY_PORT" --block \
        --node-ip-address 127.0.0.1 --num-cpus 2 --num-gpus 0 --resources "{\"$1\": 1}" $(ray_ports)
}
nodes_with() {  # the Ray node id holding custom resource $1
    in_role ray-head python -c "
import json, sys, ray
ray.init(address='auto', logging_level='ERROR')
print(','.join(n['NodeID'] for n in ray.nodes() if '$1' in n['Resources']))"
}
wait_node() {  # prints the node id once worker $1 has joined
    local i node
    for i in $(seq 120); do
        node=$(nodes_with "$1" 2>/dev/null || true)
        [[ -n "$node" ]] && { echo "$node"; return 0; }
        sleep 1
    done
    die "$1 did not join the head in 120 s"
}
worker worker-a
node_a=$(wait_node worker-a)
log "worker-a joined as node ${node_a:0:12}"

log "sweep $NAME on the head (--address auto), $TRIALS trials of $EPOCHS epochs"
t0=$(date +%s)
in_role ray-head cryotune sweep glid --spec "/runs/$NAME.yaml" --name "$NAME" \
    --address auto --workspace /runs/cryotune-runs --data-root /data --storage /runs/tune \
    --optuna-storage "$OPTUNA" --tracking-uri "$MLFLOW" >"$WORK/sweep.log" 2>&1 &
SWEEP=$!
TRIALS_DIR=$RUNS/cryotune-runs/$NAME/trials
lost=$(python3 scripts/docker_check.py wait-trial "$TRIALS_DIR" "$EPOCHS" --timeout 600) \
    || { tail -n 30 "$WORK/sweep.log" >&2; die "no trial reached a checkpoint"; }
dk kill "cryotune-worker-a-$RUN_ID" >/dev/null
log "killed worker-a mid-trial: $lost"
worker worker-b
wait "$SWEEP" || { tail -n 40 "$WORK/sweep.log" >&2; die "the sweep failed; see $WORK/sweep.log"; }
log "sweep completed in $(($(date +%s) - t0)) s"
node_b=$(wait_node worker-b)

dk run --rm --label "$LABEL" --network host -v "$RUNS:/runs" -v "$REPO/scripts:/check:ro" \
    "$CRYOTUNE_IMAGE" python /check/docker_check.py sweep \
    --sweep-dir "/runs/cryotune-runs/$NAME" --optuna "$OPTUNA" --tracking "$MLFLOW" \
    --name "$NAME" --epochs "$EPOCHS" --trials "$TRIALS" --pairs glid/unet \
    --workers "$node_a,$node_b" --lost "$lost"

role api -e "CRYOTUNE_API_TOKEN=$API_TOKEN" "$CRYOTUNE_IMAGE" \
    cryotune serve --host 127.0.0.1 --port "$API_PORT" --tracking-uri "$MLFLOW"
API=http://127.0.0.1:$API_PORT
wait_for "API" 60 python3 -c "import urllib.request as u; u.urlopen('$API/health', timeout=4)"
answer=$(http_status "$API/best/glid" "$API_TOKEN")
[[ $(head -n 1 <<<"$answer") == 200 && "$answer" == *unet* ]] \
    || die "/best/glid with the token answered: $answer"
echo "ok: the API container answers /best/glid with the token"
refused=$(http_status "$API/best/glid" | head -n 1)
[[ $refused == 401 ]] || die "/best/glid without the token answered $refused, not 401"
echo "ok: the API container refuses /best/glid without the token (401)"

dk rm -f -v $(dk ps -aq --filter "label=$LABEL") >/dev/null # free the ports for compose's services
source scripts/compose-stage.sh
log "docker-test passed"
