# Shared by scripts/docker-test.sh and scripts/compose-test.sh (sourced, not run): install the
# Debian packages a test needs, start a Docker daemon that keeps every container on the host
# network, make a Debian base image where the Dockerfile's default base cannot be pulled, and
# build the cryotune image from a local wheel folder.
#
# Settings (environment):
#   CRYOTUNE_IMAGE        tag to build            (default cryotune:test)
#   CRYOTUNE_BASE         base image to build on  (default: the Dockerfile's, else a local Debian)
#   CRYOTUNE_LOCAL_BASE   tag of the local Debian base (default cryotune-base:bookworm)
#   DEBIAN_MIRROR         mirror for debootstrap  (default: the first one apt is configured with)
#   CRYOTUNE_KEEP_DOCKERD=1  leave a daemon this script started running at the end
#   CRYOTUNE_WHEELS_PORT  loopback port serving the wheel folder to the build (default 38917; the
#                         port is part of a build argument, so a fixed one keeps the layer cached)

CRYOTUNE_IMAGE=${CRYOTUNE_IMAGE:-cryotune:test}
CRYOTUNE_LOCAL_BASE=${CRYOTUNE_LOCAL_BASE:-cryotune-base:bookworm}
# Debian's client: its built-in BuildKit reads docker/Dockerfile.dockerignore and needs no plugin.
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker || echo docker)}
export DOCKER_BUILDKIT=1
STARTED_DOCKERD_PID=

log() { echo "[$(date +%T)] $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
dk() { "$DOCKER" "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# apt-get install the Debian packages whose commands are missing: ensure_packages CMD=PKG ...
ensure_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $(id -u) -eq 0 ]] || die "install ${missing[*]} (apt-get install, as root)"
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -y -qq update >&2
    DEBIAN_FRONTEND=noninteractive apt-get -y -qq install --no-install-recommends "${missing[@]}" >&2
}

# A running daemon is used as it is; else dockerd starts with no bridge and no iptables rules, so
# containers have only the host network (every test container runs with --network host).
ensure_dockerd() {
    ensure_packages dockerd=docker.io
    [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
    if dk info >/dev/null 2>&1; then
        return 0
    fi
    local logfile=${DOCKERD_LOG:-$WORK/dockerd.log}
    log "starting dockerd (--bridge=none --iptables=false), log $logfile"
    dockerd --bridge=none --iptables=false --ip6tables=false >"$logfile" 2>&1 &
    STARTED_DOCKERD_PID=$!
    local i
    for i in $(seq 120); do
        dk info >/dev/null 2>&1 && return 0
        kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || die "dockerd exited; see $logfile"
        sleep 0.5
    done
    die "dockerd did not answer in 60 s; see $logfile"
}

stop_dockerd() {
    [[ -n "$STARTED_DOCKERD_PID" ]] || return 0
    if [[ "${CRYOTUNE_KEEP_DOCKERD:-}" == 1 ]]; then
        log "leaving dockerd (pid $STARTED_DOCKERD_PID) running"
        return 0
    fi
    log "stopping dockerd (pid $STARTED_DOCKERD_PID)"
    kill "$STARTED_DOCKERD_PID" 2>/dev/null || true
    local i
    for i in $(seq 60); do
        kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -9 "$STARTED_DOCKERD_PID" 2>/dev/null || true
}

debian_mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local found
    found=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p' \
        | tr ' ' '\n' | grep -v security | head -n 1 || true)
    [[ -n "$found" ]] || found=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' \
        /etc/apt/sources.list 2>/dev/null | grep -v security | head -n 1 || true)
    echo "${found:-http://deb.debian.org/debian}"
}

# Prints the base to build on: CRYOTUNE_BASE, else the Dockerfile's default when it is here or
# can be pulled, else the local Debian base (made once: debootstrap, then docker import).
ensure_base() {
    if [[ -n "${CRYOTUNE_BASE:-}" ]]; then
        dk image inspect "$CRYOTUNE_BASE" >/dev/null 2>&1 || dk pull "$CRYOTUNE_BASE" >&2
        echo "$CRYOTUNE_BASE"
        return
    fi
    local default
    default=$(sed -n 's/^ARG BASE=//p' docker/Dockerfile)
    if dk image inspect "$default" >/dev/null 2>&1 || timeout 120 "$DOCKER" pull "$default" >&2 2>&1; then
        echo "$default"
        return
    fi
    log "$default cannot be pulled: building on $CRYOTUNE_LOCAL_BASE"
    if ! dk image inspect "$CRYOTUNE_LOCAL_BASE" >/dev/null 2>&1; then
        ensure_packages debootstrap=debootstrap
        local rootfs mirror
        rootfs=$(mktemp -d "${TMPDIR:-/tmp}/cryotune-rootfs.XXXXXX")
        mirror=$(debian_mirror)
        log "debootstrap bookworm from $mirror"
        debootstrap --variant=minbase \
            --include=python3,python3-pip,python-is-python3,ca-certificates,procps \
            bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
            || { rm -rf "$rootfs"; die "debootstrap failed; see $WORK/debootstrap.log"; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -c . | dk import - "$CRYOTUNE_LOCAL_BASE" >/dev/null
        rm -rf "$rootfs"
    fi
    echo "$CRYOTUNE_LOCAL_BASE"
}

# Builds CRYOTUNE_IMAGE on ensure_base's image. Its pip installs from the wheel folder of
# scripts/wheelhouse.sh, served on a loopback port to a build on the host network: a rebuild
# downloads nothing.
build_image() {
    local base wheels port server status=0
    base=$(ensure_base)
    wheels=$(bash scripts/wheelhouse.sh)
    port=${CRYOTUNE_WHEELS_PORT:-38917}
    if ! python3 -c "import socket, sys; socket.socket().bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
        port=$(free_port)
        log "port ${CRYOTUNE_WHEELS_PORT:-38917} is taken: serving wheels on $port (no cached install layer)"
    fi
    python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$port" >"$WORK/wheels-http.log" 2>&1 &
    server=$!
    log "building $CRYOTUNE_IMAGE on $base"
    nice -n 10 "$DOCKER" build --network host -f docker/Dockerfile -t "$CRYOTUNE_IMAGE" \
        --build-arg "BASE=$base" \
        --build-arg "PIP_INSTALL_OPTIONS=--no-index --find-links http://127.0.0.1:$port/" \
        . >"$WORK/build.log" 2>&1 || status=$?
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    [[ $status -eq 0 ]] || { tail -n 40 "$WORK/build.log" >&2; die "docker build failed; see $WORK/build.log"; }
}
