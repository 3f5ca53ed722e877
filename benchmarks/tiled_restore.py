"""Tiled restoration: peak memory on a large image, and tiled-vs-whole quality on Set14.

    python benchmarks/tiled_restore.py --preset PRESET [--size 2048] [--data ../shared/datasets]

Prints and writes `benchmarks/results/tiled_restore.json`:
* peak RSS (ru_maxrss) of a fresh process restoring a SIZE×SIZE RGB image with the
  default tiling (`tile="auto"`), and its wall time;
* per Set14 image (BI ×scale LR), PSNR (Y, border = scale) of the whole-image output
  and of the tiled output (default tile and overlap) against HR, and the mean |Δ|.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

_PEAK = """
import json, resource, sys, time
import numpy as np
import keras_din
from keras_din.restore import ImageRestorer
restorer = ImageRestorer.from_preset(sys.argv[1])
size = int(sys.argv[2])
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
start = time.perf_counter()
out = restorer(image)
seconds = time.perf_counter() - start
rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"input": list(image.shape), "output": list(out.shape), "seconds": seconds, "peak_rss_mib": rss_mib}))
"""


def measure_peak(preset: str, size: int) -> dict:
    """Peak RSS (MiB) and seconds for one SIZE×SIZE restore in a fresh process."""
    result = subprocess.run([sys.executable, "-c", _PEAK, preset, str(size)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"The peak-memory run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_quality(preset: str, data: Path) -> dict:
    """Whole-image vs tiled PSNR on Set14 at the preset's scale."""
    import numpy as np

    from keras_din.evaluate import load_pairs
    from keras_din.metrics import y_psnr_ssim
    from keras_din.model import DIN
    from keras_din.restore import restore_array

    model = DIN.from_preset(preset)
    rows = []
    for name, hr, lr in load_pairs(data / "Set14" / "HR", model.scale):
        whole = restore_array(model, lr, tile=None)
        tiled = restore_array(model, lr, tile=192, overlap=32)
        p_whole, p_tiled = y_psnr_ssim(hr, whole, model.scale)[0], y_psnr_ssim(hr, tiled, model.scale)[0]
        rows.append({"image": name, "lr_shape": list(lr.shape), "psnr_whole": p_whole, "psnr_tiled": p_tiled})
        print(f"{name:12s} {lr.shape} whole {p_whole:.4f} tiled {p_tiled:.4f} Δ {p_tiled - p_whole:+.4f}", flush=True)
    deltas = [r["psnr_tiled"] - r["psnr_whole"] for r in rows]
    return {
        "tile": 192,
        "overlap": 32,
        "images": rows,
        "mean_psnr_whole": float(np.mean([r["psnr_whole"] for r in rows])),
        "mean_psnr_tiled": float(np.mean([r["psnr_tiled"] for r in rows])),
        "max_abs_delta": float(np.max(np.abs(deltas))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--data", default="../shared/datasets")
    parser.add_argument("--out", default="benchmarks/results/tiled_restore.json")
    args = parser.parse_args()
    report = {
        "preset": args.preset,
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "peak": measure_peak(args.preset, args.size),
    }
    print(json.dumps(report["peak"]), flush=True)
    report["set14"] = measure_quality(args.preset, Path(args.data))
    print(f"mean PSNR whole {report['set14']['mean_psnr_whole']:.4f} tiled {report['set14']['mean_psnr_tiled']:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
