#!/usr/bin/env bash
# make slurm-test: slurm/cryotune-sweep.sbatch on a one-node Slurm brought up on this machine from
# Debian's slurm-wlm and munge (own config, key, sockets and state in a temporary folder; every
# daemon on loopback), with the cluster stores: PostgreSQL (scripts/postgres.sh) for Optuna and an
# MLflow tracking server on it.
#
#   1. sbatch --wait of the script runs a smoke sweep to completion; the records, the study and the
#      MLflow runs are checked (scripts/docker_check.py) and no process of the job is left.
#   2. A second sweep is cancelled (scancel) once a trial has checkpointed an epoch: no Ray process
#      (no process carrying the job's SLURM_JOB_ID) is left behind.
#   3. The same script with --resume completes that sweep, no epoch trained twice.
#
# Runs as root with the project's venv (.venv, or VENV=DIR); installs slurm-wlm and munge when
# missing. Everything started here is stopped at the end, pass or fail; CRYOTUNE_TEST_KEEP=1 keeps
# the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${VENV:-$REPO/.venv}
[[ -x "$VENV/bin/cryotune" ]] || { echo "slurm-test: no cryotune in $VENV (make install)" >&2; exit 1; }
source scripts/docker-lib.sh # log, die, free_port, ensure_packages

WORK=$(mktemp -d /tmp/cst.XXXXXX) # short: Ray's socket paths live under it
chmod 755 "$WORK"
STARTED=$(date +%s)
PG_DIR=$WORK/postgres
PG=
MUNGED_PID=
CTLD_PID=
SLURMD_PID=
MLFLOW_PID=
export SLURM_CONF=$WORK/slurm.conf

cleanup() {
    local status=$?
    set +e
    log "cleaning up (exit $status)"
    if [[ -n "$CTLD_PID" ]]; then
        scancel --user root --partition cryotune-test >/dev/null 2>&1
        sleep 2
    fi
    for pid in $SLURMD_PID $CTLD_PID $MLFLOW_PID $MUNGED_PID; do
        kill "$pid" 2>/dev/null
    done
    for pid in $SLURMD_PID $CTLD_PID $MLFLOW_PID $MUNGED_PID; do
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null
    done
    [[ -z "$PG" ]] || bash scripts/postgres.sh stop "$PG_DIR"
    if [[ $status -eq 0 && "${CRYOTUNE_TEST_KEEP:-}" != 1 ]]; then
        rm -rf "$WORK"
    else
        log "logs kept in $WORK"
    fi
    log "slurm-test took $(($(date +%s) - STARTED)) s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_packages slurmctld=slurm-wlm slurmd=slurm-wlm munged=munge python3=python3

# --- munge: own key, socket, pid and log --------------------------------------------------------
mkdir -p "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$WORK/munge"
chmod 400 "$WORK/munge/munge.key"
munged --force --key-file "$WORK/munge/munge.key" --socket "$WORK/munge/munge.socket" \
    --pid-file "$WORK/munge/munged.pid" --log-file "$WORK/munge/munged.log" \
    --seed-file "$WORK/munge/munged.seed" || die "munged did not start; see $WORK/munge/munged.log"
MUNGED_PID=$(cat "$WORK/munge/munged.pid")

# --- slurm: one node, this machine, on loopback --------------------------------------------------
host=$(hostname -s)
node_line=$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/; s/RealMemory=[0-9]*/RealMemory=1024/")
mkdir -p "$WORK/state" "$WORK/spool"
cat >"$SLURM_CONF" <<EOF
ClusterName=cryotune-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=10
$node_line State=UNKNOWN
PartitionName=cryotune-test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i >"$WORK/slurmctld.out" 2>&1 &
CTLD_PID=$!
slurmd -D >"$WORK/slurmd.out" 2>&1 &
SLURMD_PID=$!
for _ in $(seq 60); do
    sinfo -h -o %t 2>/dev/null | grep -q idle && break
    sleep 1
done
sinfo -h -o %t | grep -q idle || die "the Slurm node is not idle: $(sinfo 2>&1); see $WORK/slurmd.log"
log "Slurm up: $(sinfo -h -o '%P %D %c %t')"

# --- the cluster stores ---------------------------------------------------------------------------
PG=$(bash scripts/postgres.sh start "$PG_DIR")
MLFLOW_PORT=$(free_port)
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$VENV/bin/mlflow" server --host 127.0.0.1 \
    --port "$MLFLOW_PORT" --workers 1 --backend-store-uri "$PG/mlflow" \
    --artifacts-destination "$WORK/mlartifacts" >"$WORK/mlflow.log" 2>&1 &
MLFLOW_PID=$!
for _ in $(seq 120); do
    python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$MLFLOW_PORT/health', timeout=4)" \
        2>/dev/null && break
    sleep 0.5
done
export CRYOTUNE_OPTUNA_STORAGE=$PG/optuna
export MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT
export CRYOTUNE_STORAGE=$WORK/tune
export CRYOTUNE_DATA=$WORK/data
export RAY_NODE_IP=127.0.0.1 RAY_TMPDIR=$WORK
export CRYOTUNE_ACTIVATE=$VENV/bin/activate
"$VENV/bin/cryotune" data synth glid --out "$CRYOTUNE_DATA/glid" --tiles 16 --seed 0 >/dev/null

spec() { # spec NAME EPOCHS TRIALS
    cat >"$WORK/$1.yaml" <<EOF
name: $1
models: [unet]
space:
  lr: {low: 1.0e-4, high: 3.0e-3}
scheduler: {kind: none, max_epochs: $2}
budget: {trials: $3, retries: 1}
resources: {cpu: 1}
trial: {weights: random, batch_size: 4, crop_size: 32, max_steps_per_epoch: 2, val_every: 1}
EOF
}
left_of_job() { # PIDs of processes still carrying SLURM_JOB_ID=$1
    local pid
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
        tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx "SLURM_JOB_ID=$1" && echo "$pid"
    done
    return 0
}
check_sweep() { # check_sweep NAME EPOCHS TRIALS [FLAGS]
    "$VENV/bin/python" scripts/docker_check.py sweep --sweep-dir "$WORK/runs/$1" \
        --optuna "$CRYOTUNE_OPTUNA_STORAGE" --tracking "$MLFLOW_TRACKING_URI" --name "$1" \
        --epochs "$2" --trials "$3" --pairs glid/unet "${@:4}"
}
no_job_left() { # no_job_left JOBID: waits for the job's processes to go (KillWait), then checks
    local left
    for _ in $(seq 60); do
        left=$(left_of_job "$1")
        [[ -z "$left" ]] && { echo "ok: no process of job $1 is left"; return 0; }
        sleep 1
    done
    ps -o pid,ppid,args -p "$(echo $left | tr ' ' ,)" >&2
    die "processes of job $1 are left behind"
}
submit() { # submit NAME [SBATCH FLAGS] -- [SWEEP FLAGS]: the job id goes to $WORK/job
    local name=$1 flags=() status=0
    shift
    while [[ $# -gt 0 && "$1" != -- ]]; do flags+=("$1"); shift; done
    shift
    # In the background, so that a signal reaches this script's trap while sbatch --wait waits.
    sbatch --parsable --chdir "$WORK" --output "$WORK/$name-%j.out" --cpus-per-task "$(nproc)" \
        "${flags[@]}" slurm/cryotune-sweep.sbatch glid --spec "$WORK/$name.yaml" --name "$name" \
        --workspace "$WORK/runs" "$@" >"$WORK/job" &
    wait $! || status=$?
    cat "$WORK"/$name-*.out >"$WORK/$name.log" 2>/dev/null || true
    return "$status"
}

# 1. a smoke sweep to completion
spec slurm-smoke 2 2
t0=$(date +%s)
submit slurm-smoke --wait -- || { tail -n 40 "$WORK/slurm-smoke.log" >&2; die "sbatch --wait failed"; }
job=$(cat "$WORK/job")
log "job $job (slurm-smoke) completed in $(($(date +%s) - t0)) s"
check_sweep slurm-smoke 2 2
no_job_left "$job"

# 2. cancelled mid-sweep
spec slurm-cancel 5 2
submit slurm-cancel --
job=$(cat "$WORK/job")
lost=$("$VENV/bin/python" scripts/docker_check.py wait-trial "$WORK/runs/slurm-cancel/trials" 5 \
    --timeout 600) || { cat "$WORK"/slurm-cancel-*.out >&2; die "no trial reached a checkpoint"; }
scancel "$job"
log "cancelled job $job mid-trial: $lost"
for _ in $(seq 60); do
    squeue -h -j "$job" 2>/dev/null | grep -q . || break
    sleep 1
done
no_job_left "$job"

# 3. the same script with --resume completes it
t0=$(date +%s)
submit slurm-cancel --wait -- --resume \
    || { tail -n 40 "$WORK/slurm-cancel.log" >&2; die "the resumed sweep failed"; }
job=$(cat "$WORK/job")
log "job $job (slurm-cancel --resume) completed in $(($(date +%s) - t0)) s"
check_sweep slurm-cancel 5 2 --driver-killed "$lost"
no_job_left "$job"
log "slurm-test passed"
