"""Check the Spaces' install steps without Docker: fresh venv, same commands, serve, probe.

Performs the Dockerfile's steps (and the Gradio Space's requirements) in a new virtual
environment and starts both front ends on 127.0.0.1, checking that each answers HTTP.
The one substitution: where the CPU PyTorch index is unreachable (an offline machine),
the torch step installs ``torch==2.14.1 torchvision==0.29.1`` from the local pip
instead; the script says so. Usage: ``python docs/spaces/check_space_install.py``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd: list[str], **kwargs) -> None:  # type: ignore[no-untyped-def]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def wait_for(url: str, process: subprocess.Popen, timeout: float = 180) -> int:  # type: ignore[type-arg]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except OSError:
            time.sleep(2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def main() -> int:
    dockerfile = (REPO / "Dockerfile").read_text()
    pip_steps = re.findall(r"^RUN (pip install .*)$", dockerfile, flags=re.M)
    assert len(pip_steps) == 3 and "torch" in pip_steps[0] and ".[app]" in pip_steps[1], pip_steps
    assert "--no-deps facenet-pytorch" in pip_steps[2], pip_steps
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        try:
            run(
                [
                    python,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "torch",
                    "torchvision",
                    "--index-url",
                    "https://download.pytorch.org/whl/cpu",
                ],
                timeout=120,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            print("CPU index unreachable here: installing torch==2.14.1 torchvision==0.29.1 locally instead")
            run([python, "-m", "pip", "install", "--quiet", "torch==2.14.1", "torchvision==0.29.1"])
        run([python, "-m", "pip", "install", "--quiet", f"{REPO}[app,gradio]"])
        face_package = pip_steps[2].split("--no-deps", 1)[1].split()[0]
        run([python, "-m", "pip", "install", "--quiet", "--no-deps", face_package])
        env = {
            **os.environ,
            "CRMN_VIZ_CHECKPOINT_DIR": str(REPO / "checkpoints"),
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        }
        port = free_port()
        streamlit = subprocess.Popen(
            [
                python,
                "-m",
                "streamlit",
                "run",
                "app.py",
                f"--server.port={port}",
                "--server.address=127.0.0.1",
                "--server.headless=true",
            ],
            cwd=REPO,
            env=env,
        )
        try:
            assert wait_for(f"http://127.0.0.1:{port}/_stcore/health", streamlit) == 200
            print(f"streamlit Space: healthy on port {port}")
        finally:
            streamlit.terminate()
            streamlit.wait(timeout=30)
        port = free_port()
        gradio = subprocess.Popen(
            [python, "crmn_viz/frontends/gradio_app.py", "--port", str(port)], cwd=REPO, env=env
        )
        try:
            assert wait_for(f"http://127.0.0.1:{port}/", gradio) == 200
            print(f"gradio Space: serving on port {port}")
        finally:
            gradio.terminate()
            gradio.wait(timeout=30)
    print("Space install steps: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
