"""Many ``examples/lung_xray.py`` trainings at once on one accelerator, gathered into one file.

The lung study (augmentation arms x seeds x validation splits, each a full
1,200-step training) is hours of CPU one run at a time. On a GPU each run uses a
fraction of the chip, so this starts every run as its own process (the example's
own ``main`` with one arm, one seed and one split), a few at a time, and merges
their ``metrics.json`` into ``--out/lung_study.json`` as they finish (a run cut off
by ``--deadline`` is listed as unfinished, never guessed).

On the JAX and PyTorch backends the example's array pipeline is the library's
``BatchStream`` (a ``keras.utils.PyDataset`` that shuffles the same arrays and runs
the same augmentation layers on each batch with the active backend, on the GPU).
Model, loss, optimizer, schedule, budget and scoring are the example's own: each
run is the example itself, started as a process.

    KERAS_BACKEND=jax python research/lung_study_parallel.py --data ../shared/data/lung-xray \\
        --runs none:0:0 all:0:0 all+lite0:0:0 --parallel 8 --out outputs/lung_study

Measured on one H200 with 16 CPU cores: 24 runs at once starve XLA compilation (first epoch 106-262 s,
then ~1.1 s per step each); keep ``--parallel`` to 4-6 there.

A run is ``ARM:SEED:SPLIT``; ``ARM+lite0`` trains on the ImageNet EfficientNet-Lite0
encoder (the ``pretrained`` extra). ``--quick`` passes ``--quick`` to every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _example_argv(spec: str, data: Path, out: Path, quick: bool) -> list[str]:
    arm, seed, split = spec.split(":")
    arm, _, encoder = arm.partition("+")
    argv = ["--data", str(data), "--arms", arm, "--seed", seed, "--seeds", "1", "--split-seed", split,
            "--out", str(out)]
    if encoder:
        argv += ["--encoder", f"efficientnet_{encoder}", "--encoder-weights", "imagenet"]
    return argv + (["--quick"] if quick else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", required=True, help="ARM[+lite0]:SEED:SPLIT, e.g. all:0:1")
    parser.add_argument("--parallel", type=int, default=4, help="runs at a time")
    parser.add_argument("--deadline", type=float, default=None, help="seconds; runs still going are stopped")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lung_study"), help="each run's own --out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start, pending, running, results = time.monotonic(), list(args.runs), {}, {}
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)

    def write():
        import platform

        payload = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
                   "backend": os.environ.get("KERAS_BACKEND", "tensorflow"), "wall_seconds": time.monotonic() - start,
                   "runs": results, "unfinished": sorted(set(args.runs) - set(results))}
        (args.out / "lung_study.json").write_text(json.dumps(payload, indent=1, default=float))

    while pending or running:
        while pending and len(running) < args.parallel:
            spec = pending.pop(0)
            out = args.work / spec.replace(":", "_").replace("+", "_")
            log = open(logs / (spec.replace(":", "_").replace("+", "_") + ".log"), "w")
            cmd = [sys.executable, "-u", str(ROOT / "examples" / "lung_xray.py"),
                   *_example_argv(spec, args.data, out, args.quick)]
            running[spec] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), out, log)
            print(f"[{time.monotonic() - start:6.0f} s] started {spec}", flush=True)
        for spec, (process, out, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[spec]
            metrics = out / "metrics.json"
            if process.returncode == 0 and metrics.is_file():
                results[spec] = json.loads(metrics.read_text())
                print(f"[{time.monotonic() - start:6.0f} s] done {spec}", flush=True)
            else:
                print(f"[{time.monotonic() - start:6.0f} s] FAILED {spec} (exit {process.returncode}); "
                      f"its log: {log.name}", flush=True)
            write()
        if args.deadline and time.monotonic() - start > args.deadline:
            for spec, (process, _, log) in running.items():
                process.kill()
                log.close()
                print(f"stopped at the deadline: {spec}", flush=True)
            break
        time.sleep(2)
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
