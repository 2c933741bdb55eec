#!/usr/bin/env bash
# Assemble the Gradio Space: a copy of this repository (committed files) whose README front
# matter says sdk: gradio and whose requirements.txt installs the package: with CPU PyTorch, or
# with --gpu CUDA PyTorch and Hugging Face's `spaces` (ZeroGPU or a dedicated GPU Space).
# Usage: docs/spaces/make_gradio_space.sh [--gpu] DEST
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
requirements=requirements.txt
if [ "${1:-}" = --gpu ]; then
    requirements=requirements-gpu.txt
    shift
fi
dest="${1:?usage: make_gradio_space.sh [--gpu] DEST}"
mkdir -p "$dest"
git -C "$here" archive HEAD | tar -x -C "$dest"
rm -f "$dest/Dockerfile"
cp "$here/docs/spaces/gradio/$requirements" "$dest/requirements.txt"
python3 - "$here" "$dest" <<'PY'
import re, sys
from pathlib import Path
here, dest = Path(sys.argv[1]), Path(sys.argv[2])
body = re.sub(r"\A---\n.*?\n---\n", "", (here / "README.md").read_text(), count=1, flags=re.S)
header = (here / "docs/spaces/gradio/README.md").read_text().split("\n---\n", 1)[0] + "\n---\n"
(dest / "README.md").write_text(header + "\n" + body.lstrip())
PY
echo "Gradio Space assembled in $dest"
