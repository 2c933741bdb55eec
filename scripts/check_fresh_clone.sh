#!/usr/bin/env bash
# The README's first command on a fresh clone: clone this repository into a new temporary folder
# (no virtual environment there), run `make app` on a free port in the background, wait for
# Streamlit's health endpoint (/_stcore/health) to answer "ok", then stop the app by its process
# id and check that it is gone. Prints how long the set-up + start took, then how long a second
# `make setup` takes (the stamp file makes it a no-op).
#
# Usage: scripts/check_fresh_clone.sh [--worktree]
#   --worktree   copy this working tree's files (tracked and untracked, not ignored) instead of
#                cloning HEAD, to check changes that are not committed yet
# Variables: FRESH_CLONE_TIMEOUT (seconds to wait for health, default 1800), KEEP_FRESH_CLONE=1
#            (leave the folder for a look), PYTHON (the python that makes the venv).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
mode=clone
if [ "${1:-}" = --worktree ]; then mode=worktree; elif [ -n "${1:-}" ]; then
    echo "usage: $0 [--worktree]" >&2
    exit 2
fi
timeout_s="${FRESH_CLONE_TIMEOUT:-1800}"
python="${PYTHON:-python3}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/crmn-viz-fresh-clone.XXXXXX")"
clone="$scratch/crmn-viz"
log="$scratch/make-app.log"
pid=""

cleanup() {
    status=$?
    if [ -n "$pid" ] && kill -0 -- "-$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        sleep 3
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$log" ]; then
        echo "---- last lines of make app ($log) ----" >&2
        tail -n 40 "$log" >&2 || true
    fi
    if [ "${KEEP_FRESH_CLONE:-0}" = 1 ] || [ "$status" -ne 0 ]; then
        echo "[fresh-clone] kept $scratch" >&2
    else
        rm -rf "$scratch"
    fi
    exit "$status"
}
trap cleanup EXIT

if [ "$mode" = clone ]; then
    echo "[fresh-clone] git clone $repo -> $clone"
    git clone --quiet --no-hardlinks "$repo" "$clone"
else
    echo "[fresh-clone] copying the working tree of $repo -> $clone"
    mkdir -p "$clone"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' path; do [ -e "$path" ] && printf '%s\0' "$path"; done |
        tar --null -T - -cf -) | tar -xf - -C "$clone"
fi
[ ! -e "$clone/.venv" ] || {
    echo "[fresh-clone] $clone already has a .venv" >&2
    exit 1
}

port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
echo "[fresh-clone] make app PORT=$port (log: $log)"
start=$(date +%s)
# Its own process group (set -m), so stopping it stops make and Streamlit under it.
set -m
STREAMLIT_SERVER_ADDRESS=127.0.0.1 make -C "$clone" app PORT="$port" PYTHON="$python" </dev/null >"$log" 2>&1 &
pid=$!
set +m

url="http://127.0.0.1:$port/_stcore/health"
until answer="$("$python" -c "import urllib.request, sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "$url" 2>/dev/null)" &&
    [ "$answer" = ok ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" || true
        echo "[fresh-clone] make app exited before $url answered" >&2
        exit 1
    fi
    if [ $(($(date +%s) - start)) -ge "$timeout_s" ]; then
        echo "[fresh-clone] $url did not answer within $timeout_s s" >&2
        exit 1
    fi
    sleep 3
done
healthy=$(($(date +%s) - start))
echo "[fresh-clone] $url answered \"ok\" after ${healthy} s (set-up + start)"
grep '^\[setup\]' "$log" || true

kill -TERM -- "-$pid" # make and the Streamlit server it started: the process group $pid
for _ in $(seq 1 30); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 1; done
if kill -0 -- "-$pid" 2>/dev/null; then
    echo "[fresh-clone] make app (process group $pid) still runs 30 s after SIGTERM" >&2
    exit 1
fi
wait "$pid" 2>/dev/null || true
pid=""
if "$python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=3)" "$url" 2>/dev/null; then
    echo "[fresh-clone] the app still answers after it was stopped" >&2
    exit 1
fi
echo "[fresh-clone] stopped"

again=$(date +%s)
make -C "$clone" --question setup || {
    echo "[fresh-clone] a second set-up would run again (the stamp is not up to date)" >&2
    exit 1
}
make -C "$clone" setup >/dev/null
echo "[fresh-clone] second make setup: $(($(date +%s) - again)) s (stamp up to date)"
echo "[fresh-clone] OK"
