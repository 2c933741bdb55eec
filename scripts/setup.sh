#!/usr/bin/env bash
# Set up crmn-viz in a local virtual environment (the Makefile's `setup`, run by `make app` and
# `make test`; README "Quick start"). Safe to run again: every step checks before it acts.
#
#   1. the virtual environment VENV (default .venv), made with PYTHON (default python3, >= 3.10);
#   2. PyTorch (TORCH_PACKAGES, default torch==2.14.1 torchvision==0.29.1), then the package with
#      its extras (EXTRAS, default test,app,gradio,compare), editable, and the libraries the tests
#      compare against (COMPARE_PACKAGES, default Quantus, pytorch-grad-cam and dlib, without their deps)
#      and the MTCNN face detector (FACE_PACKAGES, facenet-pytorch, without its deps);
#   3. Debian's chromium, fonts-liberation and poppler-utils for figure export (PDF/SVG/PNG), when
#      missing and this user may install them (root, or sudo without a password); otherwise it
#      says that exports fall back to HTML and how to install them later.
#
# Usage: scripts/setup.sh   (variables: VENV, PYTHON, TORCH_PACKAGES, EXTRAS, SKIP_SYSTEM_PACKAGES=1)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_PACKAGES="${TORCH_PACKAGES:-torch==2.14.1 torchvision==0.29.1}"
EXTRAS="${EXTRAS:-test,app,gradio,compare}"
COMPARE_PACKAGES="${COMPARE_PACKAGES:-quantus==0.6.0 grad-cam==1.5.7 dlib-bin==20.0.1.post1}"
# The default face detector, MTCNN (weights inside the wheel); --no-deps: its metadata pins
# torch < 2.3 and numpy < 2, but it runs on the versions installed here (tests check it).
FACE_PACKAGES="${FACE_PACKAGES:-facenet-pytorch==2.6.0}"
SYSTEM_PACKAGES=(chromium fonts-liberation poppler-utils)

say() { printf '[setup] %s\n' "$*"; }
fail() {
    printf '[setup] error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- 1. virtual environment
if ! "$VENV/bin/python" -c "" >/dev/null 2>&1; then
    command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found: install Python >= 3.10 or set PYTHON=/path/to/python3"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        fail "$PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); crmn-viz needs >= 3.10 (set PYTHON=...)"
    if [ -e "$VENV" ]; then
        say "$VENV exists but its python does not run: making it again"
        rm -rf "$VENV"
    fi
    say "making the virtual environment $VENV with $("$PYTHON" -c 'import sys; print(sys.executable)')"
    "$PYTHON" -m venv "$VENV" ||
        fail "could not make $VENV (on Debian/Ubuntu: apt-get install python3-venv)"
fi
py="$VENV/bin/python"

# ---------------------------------------------------------------- 2. Python packages
say "installing $TORCH_PACKAGES"
# shellcheck disable=SC2086  # the package list is meant to split into words
"$py" -m pip install --quiet $TORCH_PACKAGES
say "installing crmn-viz (editable) with [$EXTRAS]"
"$py" -m pip install --quiet -e ".[$EXTRAS]"
if [ -n "$COMPARE_PACKAGES" ]; then
    # Quantus and pytorch-grad-cam, which tests cross-check against: without their own dependency
    # lists, which name opencv-python 5 (it would overwrite the headless 4.x cv2 and its Haar
    # cascades); what they need beyond that is the [compare] extra.
    say "installing $COMPARE_PACKAGES (--no-deps; their dependencies are the [compare] extra)"
    # shellcheck disable=SC2086
    "$py" -m pip install --quiet --no-deps $COMPARE_PACKAGES
fi

if [ -n "$FACE_PACKAGES" ]; then
    say "installing $FACE_PACKAGES (--no-deps; the face detector falls back to Haar without it)"
    # shellcheck disable=SC2086
    "$py" -m pip install --quiet --no-deps $FACE_PACKAGES
fi

# ---------------------------------------------------------------- 3. figure export (Chromium)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
{ command -v fc-list >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi liberation; } || missing+=(fonts-liberation)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
if [ "${#missing[@]}" -gt 0 ] && [ "${SKIP_SYSTEM_PACKAGES:-0}" != 1 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no apt-get here: install ${missing[*]} with your system's package manager for figure export"
    else
        as_root=()
        if [ "$(id -u)" -ne 0 ]; then
            if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
                as_root=(sudo -n)
            else
                as_root=(none)
            fi
        fi
        if [ "${as_root[*]}" = none ]; then
            say "not root and no password-free sudo: skipping the system packages ${missing[*]}"
        else
            say "installing the system packages ${missing[*]}"
            if ! { "${as_root[@]}" apt-get update -qq &&
                "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
                say "apt-get could not install ${missing[*]}"
            fi
        fi
    fi
fi

# What the app will do, as the package itself decides it.
if "$py" -c "import sys; from crmn_viz.figures import browser_available; sys.exit(not browser_available())"; then
    say "figure export: PDF, SVG and PNG (Chromium found)"
else
    say "NOTE: no Chrome/Chromium found, so figure exports fall back to HTML (and JSON data)."
    say "      For PDF/SVG/PNG: sudo apt-get install -y chromium fonts-liberation (or set BROWSER_PATH),"
    say "      then run the command again."
fi
say "done: $VENV is ready"
