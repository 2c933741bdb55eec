"""OpenMP's wait policy and a busy core: CRMN forwards and MTCNN detection, idle and contended.

Prints, for ``OMP_WAIT_POLICY`` unset (spinning) and ``PASSIVE``, with the machine otherwise idle
and with a competing one-thread process kept busy: ``crmn-cifar10`` forward time at batch 64 and
1 (2 torch threads), and MTCNN detection time per faces68 training photo on 2 and 1 threads.
Each measurement runs in a fresh process (the policy is read when OpenMP loads). BENCHMARKS.md,
seventh session. Usage: ``python bench/omp_wait_policy.py --data-dir ../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

MEASURE = r"""
import json, sys, time, torch
import crmn_viz
from crmn_viz.analysis.face_detectors import MTCNNFaceDetector, faces68_photos
torch.set_num_threads(2)
model = crmn_viz.load("crmn-cifar10")
def forward_ms(batch, n):
    x = torch.rand(batch, 3, 32, 32)
    with torch.no_grad():
        for _ in range(3): model(x)
        t = time.perf_counter()
        for _ in range(n): model(x)
    return 1000 * (time.perf_counter() - t) / n
row = {"forward_b64_ms": forward_ms(64, 10), "forward_b1_ms": forward_ms(1, 50)}
_, photos, _ = faces68_photos(sys.argv[1], "train", 20)
detector = MTCNNFaceDetector()
networks = __import__("crmn_viz.analysis.face_detectors", fromlist=["_mtcnn_networks"])._mtcnn_networks()
from PIL import Image
for threads in (2, 1):
    torch.set_num_threads(threads)
    t = time.perf_counter()
    with torch.no_grad():
        for p in photos: networks.detect(Image.fromarray(p))
    row[f"mtcnn_{threads}_threads_ms"] = 1000 * (time.perf_counter() - t) / len(photos)
print(json.dumps(row))
"""

BUSY = "import torch\ntorch.set_num_threads(1)\nx = torch.rand(512, 512)\nwhile True: x @ x"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="data root holding faces68/")
    args = parser.parse_args()
    for busy in (False, True):
        competitor = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
        try:
            for policy in (None, "PASSIVE"):
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                if policy:
                    env["OMP_WAIT_POLICY"] = policy
                out = (
                    subprocess.run(
                        [sys.executable, "-c", MEASURE, args.data_dir],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
                row = {
                    "other_core": "busy" if busy else "idle",
                    "OMP_WAIT_POLICY": policy or "unset",
                    **json.loads(out),
                }
                print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}))
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
