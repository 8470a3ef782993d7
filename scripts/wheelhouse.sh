#!/usr/bin/env bash
# Build (once) a folder of wheels holding everything the image installs, so that image rebuilds
# download nothing: the pinned set (constraints.txt), ray[default] and the build backend.
#
#   scripts/wheelhouse.sh [DIR]     prints the folder; default
#                                   ${CRYOTUNE_WHEELHOUSE:-${XDG_CACHE_HOME:-~/.cache}/cryotune/wheelhouse}/KEY
#
# KEY is a hash of constraints.txt and pyproject.toml: a new pin makes a new folder. pip runs
# with this machine's own configuration (its indexes, find-links and cache), so a machine that
# keeps wheels on local disk fills the folder from there. The torch wheels alone are gigabytes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
key=$(cat constraints.txt pyproject.toml | sha256sum | cut -c1-16)
root=${CRYOTUNE_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/cryotune/wheelhouse}
dir=${1:-$root/$key}

if [[ ! -f "$dir/.complete" ]]; then
    mkdir -p "$dir"
    echo "wheelhouse.sh: filling $dir (once per constraints.txt)" >&2
    # Both the image's install set and setuptools (cryotune's build backend, pip builds it there).
    "$PYTHON" -m pip wheel -q -c constraints.txt -w "$dir" . "ray[default]" "setuptools>=68" \
        "wheel" >&2
    rm -f "$dir"/cryotune-*.whl   # the image installs cryotune from its own copy of the source
    touch "$dir/.complete"
fi
echo "$dir"
