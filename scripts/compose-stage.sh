# The docker-compose part of scripts/docker-test.sh (sourced there after the plain containers are
# removed; it uses that script's image, PostgreSQL, tokens and helpers).
#
# Debian's docker-compose 1.29 parses and interpolates docker/compose.yaml with
# docker/compose.host.yaml (the loopback PostgreSQL instead of the postgres service, every service
# on the host network), brings up mlflow, ray-head, ray-worker and api from it one after another,
# waits for each one's own health check, runs a sweep on the head with the stores the compose
# environment names, checks it, and asks the api for /best/glid with and without the token.

ensure_packages docker-compose=docker-compose
for port in 5000 6379 8265 8000 10001 52365 52366; do
    python3 -c "import socket, sys; socket.socket().bind(('127.0.0.1', int(sys.argv[1])))" "$port" \
        2>/dev/null || die "port $port is taken: compose.host.yaml's services need it"
done
CDIR=$WORK/compose
mkdir -p "$CDIR/weights" "$CDIR/runs"
{
    echo "POSTGRES_PASSWORD=unused-the-host-server-is-used"
    echo "CRYOTUNE_API_TOKEN=$API_TOKEN"
    echo "RAY_AUTH_TOKEN=$RAY_TOKEN"
    echo "CRYOTUNE_DATA_DIR=$DATA"
    echo "CRYOTUNE_WEIGHTS_DIR=$CDIR/weights"
    echo "CRYOTUNE_RUNS_DIR=$CDIR/runs"
    echo "CRYOTUNE_IMAGE=$CRYOTUNE_IMAGE"
    echo "RAY_SHM_SIZE=1gb"
    echo "CRYOTUNE_POSTGRES_URL=$PG"
} >"$CDIR/.env"
PROJECT=cryotune-test-$RUN_ID
version=$(docker-compose version --short)
docker-compose -p "$PROJECT" --env-file "$CDIR/.env" -f docker/compose.yaml \
    -f docker/compose.host.yaml config >"$CDIR/merged.yaml" \
    || die "docker-compose $version rejects compose.yaml + compose.host.yaml"
echo "ok: docker-compose $version parses and interpolates compose.yaml + compose.host.yaml"
# docker-compose 1.29 refuses published ports on the host network (v2 ignores them), and without
# the NVIDIA runtime ray-worker's GPU reservation cannot be met: the merged file drops both.
gpus=$(dk info -f '{{json .Runtimes}}' | grep -c nvidia || true)
dk run --rm -i -e "GPUS=$gpus" "$CRYOTUNE_IMAGE" python -c "
import os, sys, yaml
merged = yaml.safe_load(sys.stdin)
for service in merged['services'].values():
    service.pop('ports', None)
if os.environ['GPUS'] == '0':
    merged['services']['ray-worker'].pop('deploy')
yaml.safe_dump(merged, sys.stdout, sort_keys=False)" <"$CDIR/merged.yaml" >"$CDIR/merged-run.yaml"
COMPOSE_FILE_RUN=$CDIR/merged-run.yaml
compose() { docker-compose -p "$PROJECT" -f "$COMPOSE_FILE_RUN" "$@"; }
healthy() { # waits for compose's own health check of service $1
    local i id state
    for i in $(seq 120); do
        id=$(compose ps -q "$1")
        state=$(dk inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || true)
        [[ "$state" == healthy ]] && { log "compose: $1 healthy"; return 0; }
        sleep 2
    done
    compose logs --tail 30 "$1" >&2
    die "compose service $1 not healthy in 240 s"
}
for group in mlflow ray-head "ray-worker api"; do
    # shellcheck disable=SC2086  # a group names one or two services
    compose up -d --no-deps --no-build $group >>"$CDIR/up.log" 2>&1 \
        || { cat "$CDIR/up.log" >&2; die "docker-compose up $group failed"; }
    for one in $group; do healthy "$one"; done
done

cat >"$CDIR/runs/compose-smoke.yaml" <<SPEC
name: compose-smoke
models: [unet]
space:
  lr: {low: 1.0e-4, high: 3.0e-3}
scheduler: {kind: none, max_epochs: 2}
budget: {trials: 1, retries: 1}
resources: {cpu: 1}
trial: {weights: random, batch_size: 4, crop_size: 32, max_steps_per_epoch: 2, val_every: 1}
SPEC
log "compose: sweep on ray-head with the stores its environment names"
compose exec -T ray-head cryotune sweep glid --spec /runs/compose-smoke.yaml \
    --name compose-smoke --address auto --workspace /runs/cryotune-runs >"$CDIR/sweep.log" 2>&1 \
    || { tail -n 40 "$CDIR/sweep.log" >&2; die "the compose sweep failed; see $CDIR/sweep.log"; }
dk run --rm --label "$LABEL" --network host -v "$CDIR/runs:/runs" -v "$REPO/scripts:/check:ro" \
    "$CRYOTUNE_IMAGE" python /check/docker_check.py sweep \
    --sweep-dir /runs/cryotune-runs/compose-smoke --optuna "$OPTUNA" \
    --tracking http://127.0.0.1:5000 --name compose-smoke --epochs 2 --trials 1 --pairs glid/unet
answer=$(http_status "http://127.0.0.1:8000/best/glid" "$API_TOKEN")
[[ $(head -n 1 <<<"$answer") == 200 && "$answer" == *unet* ]] \
    || die "compose api: /best/glid with the token answered: $answer"
answer=$(http_status "http://127.0.0.1:8000/sweeps/compose-smoke" "$API_TOKEN")
[[ $(head -n 1 <<<"$answer") == 200 ]] || die "compose api: /sweeps/compose-smoke answered: $answer"
[[ $(http_status "http://127.0.0.1:8000/best/glid" | head -n 1) == 401 ]] \
    || die "compose api: /best/glid without the token was not refused"
echo "ok: compose's api answers /best/glid and /sweeps/compose-smoke with the token, refuses without"
compose down -v --remove-orphans >>"$CDIR/up.log" 2>&1
COMPOSE_FILE_RUN=
