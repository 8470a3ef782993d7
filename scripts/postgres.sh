#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the tests that need one (Optuna and MLflow stores).
#
#   scripts/postgres.sh start DIR [PORT]   initdb in DIR, start on 127.0.0.1:PORT (default: a free
#                                          port), create databases optuna and mlflow; prints the
#                                          URL base postgresql://cryotune:PASSWORD@127.0.0.1:PORT
#   scripts/postgres.sh stop DIR           stop the server of DIR and delete DIR
#   scripts/postgres.sh run DIR -- CMD...  start, run CMD with $CRYOTUNE_TEST_POSTGRES set to the URL
#                                          base, stop (also when CMD fails); exits with CMD's status
#
# Uses the Debian server binaries (/usr/lib/postgresql/*/bin), installing `postgresql` with
# apt-get when they are missing and this runs as root. PostgreSQL refuses to run as root, so as
# root the server runs as the `postgres` user (else `nobody`).
set -euo pipefail

ROLE=cryotune
DATABASES=(optuna mlflow)

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

server_bin() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -z "$found" && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get -y -qq update >&2
        DEBIAN_FRONTEND=noninteractive apt-get -y -qq install postgresql >&2
        found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    [[ -n "$found" && -x "$found/initdb" ]] \
        || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; install the Debian package postgresql"
    echo "$found"
}

server_user() {
    if [[ $(id -u) -ne 0 ]]; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        echo nobody
    fi
}

as_server_user() {
    local user=$1
    shift
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir=$1 port=${2:-}
    [[ -n "$port" ]] || port=$(free_port)
    local bin user password
    bin=$(server_bin)
    user=$(server_user)
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    mkdir -p "$dir"
    [[ -z "$(ls -A "$dir")" ]] || die "$dir is not empty; give a new folder"
    [[ $(id -u) -ne 0 ]] || chown "$user" "$dir"
    chmod 700 "$dir"
    as_server_user "$user" test -w "$dir" \
        || die "user $user cannot write $dir (a parent folder closed to it?); give a folder under /tmp"
    printf '%s\n' "$password" >"$dir/.pwfile"
    [[ $(id -u) -ne 0 ]] || chown "$user" "$dir/.pwfile"
    as_server_user "$user" "$bin/initdb" -D "$dir/data" -U "$ROLE" --pwfile="$dir/.pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
        || die "initdb failed; see $dir/initdb.log"
    rm -f "$dir/.pwfile"
    as_server_user "$user" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
        || die "the server did not start on 127.0.0.1:$port; see $dir/server.log"
    for db in "${DATABASES[@]}"; do
        PGPASSWORD=$password "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$ROLE" "$db"
    done
    echo "postgresql://$ROLE:$password@127.0.0.1:$port"
}

stop() {
    local dir=$1
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        local bin user
        bin=$(server_bin)
        user=$(stat -c %U "$dir/data")
        as_server_user "$user" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    fi
    rm -rf "$dir"
}

run() {
    local dir=$1
    shift
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || die "run DIR -- CMD...: give a command"
    local url status=0
    url=$(start "$dir") || { stop "$dir"; exit 1; }
    trap 'stop "$dir"' EXIT
    CRYOTUNE_TEST_POSTGRES=$url "$@" || status=$?
    exit "$status"
}

case "${1:-}" in
    start) [[ $# -ge 2 ]] || die "usage: start DIR [PORT]"; start "$2" "${3:-}" ;;
    stop) [[ $# -eq 2 ]] || die "usage: stop DIR"; stop "$2" ;;
    run) [[ $# -ge 3 ]] || die "usage: run DIR -- CMD..."; run "${@:2}" ;;
    *) die "usage: $0 start DIR [PORT] | stop DIR | run DIR -- CMD..." ;;
esac
