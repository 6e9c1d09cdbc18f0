"""Side by side with segmentation_models_pytorch (smp): the same encoder, the same machine, one run.

What it prints, from one run:

1. **FLOPs and parameters** per 256 x 256 image of: our aerial default
   (``build_architecture("compact_lite0")``: EfficientNet-Lite0 under the compact decoder, smp's
   graph but for a 1x1 head, ``tests/test_peer_models.py``), our nested decoder (``"nested_lite0"``:
   filters 16-256 over 6 levels, deep supervision, the aerial default before this comparison) and
   smp's ``UnetPlusPlus`` on ``tu-efficientnet_lite0`` (its default decoder, 256-16). FLOPs are
   counted one way for all three (``peer_models.conv_flops_keras`` / ``conv_flops_torch``: 2 x
   multiply-adds of every convolution); the run stops if ours differ from smp's by more than 5 %.
2. **Where the work goes**: those FLOPs by resolution (stride 1 .. 32), encoder and decoder apart.
3. **The machine's matmul rate** (float32, 2048 x 2048, TensorFlow and torch), the ceiling.
4. **Speed**, images/s of a training step (Adam, binary cross-entropy) and of inference, at 256 and
   512 px, batch 1 and 8: smp in PyTorch; our aerial default on the TensorFlow, JAX and PyTorch
   backends (smp's topology: against smp this ratio is the framework's, and on TensorFlow it is also
   what a user sees); our nested decoder on TensorFlow.
   Each model runs in its own process (one backend per process); the processes run in turns, in
   ``--rounds`` rounds, and the best round counts. Achieved GFLOP/s = FLOPs x images/s (x 3 for a
   training step: forward, and backward for inputs and weights).

    pip install -e ".[peers,pretrained]"       # smp, timm, torch, torchvision (never the library's dependencies)
    python benchmarks/peers.py                  # the full run (30 min on a 2-core CPU)
    python benchmarks/peers.py --quick          # 64 px, batch 1 and 2, one round: a smoke run
    # grey films, the lung default against smp:
    python benchmarks/peers.py --channels 1 --sizes 256 --batches 8 --workers smp plain-tensorflow ours-tensorflow

Writes the JSON of the run to ``--out`` (default ``benchmarks/results/peers.json``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = ("segmentation_models_pytorch", "timm", "torch", "torchvision")
#: name -> (backend, what it is)
WORKERS = {
    "smp": ("torch", "smp UnetPlusPlus, tu-efficientnet_lite0, PyTorch"),
    "ours-tensorflow": ("tensorflow", "ours: aerial default (compact_lite0), TensorFlow"),
    "ours-jax": ("jax", "ours: aerial default (compact_lite0), JAX"),
    "ours-torch": ("torch", "ours: aerial default (compact_lite0), PyTorch"),
    "nested-tensorflow": ("tensorflow", "ours: nested decoder (nested_lite0), TensorFlow"),
    "plain-tensorflow": ("tensorflow", "ours: lung default (plain), TensorFlow"),
}
#: the workers a plain run times (the lung default joins with --channels 1 --workers ...)
DEFAULT_WORKERS = ["smp", "ours-tensorflow", "ours-jax", "ours-torch", "nested-tensorflow"]


def missing_peers() -> list[str]:
    return [name for name in PEERS if importlib.util.find_spec(name) is None]


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seconds", type=float, default=3.0, help="least timed seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", nargs="+", default=DEFAULT_WORKERS, choices=list(WORKERS))
    parser.add_argument("--channels", type=int, choices=[1, 3], default=3,
                        help="input bands (1: grey films, smp's first convolution summed as ours)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "peers.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)   # internal: one model in this process
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.seconds, args.rounds = [64], [1, 2], 0.5, 1
    return args


# ----------------------------------------------------------------------------- the models

#: worker prefix -> the library's named architecture it times
ARCHITECTURE = {"ours": "compact_lite0", "nested": "nested_lite0", "plain": "plain"}


def keras_model(prefix: str, channels: int = 3):
    """Our model of a worker (random weights, sigmoid output)."""
    from keras_unetpp.models import build_architecture

    return build_architecture(ARCHITECTURE[prefix], channels=channels)


def images_per_second(fn, batch: int, seconds: float) -> float:
    """``batch`` / the median seconds of ``fn()``, timed for at least ``seconds`` (two calls at
    least) after two warm-up calls (tracing, compilation, caches)."""
    import numpy as np

    fn()
    fn()
    times = []
    while sum(times) < seconds or len(times) < 2:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times))


def run_worker(name: str, args) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    if name == "smp":
        import peer_models
        import torch

        network = peer_models.smp_unet_plus_plus(imagenet=False, in_channels=args.channels)
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        for size in args.sizes:
            for batch in args.batches:
                x = torch.as_tensor(rng.normal(size=(batch, args.channels, size, size)).astype("float32"))
                y = torch.as_tensor((rng.random((batch, 1, size, size)) > 0.5).astype("float32"))

                def train():
                    network.train()
                    loss = loss_fn(network(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

                def predict():
                    network.eval()
                    with torch.inference_mode():
                        network(x)

                rows.append(dict(size=size, batch=batch, train=images_per_second(train, batch, args.seconds),
                                 predict=images_per_second(predict, batch, args.seconds)))
        return rows
    import keras

    model = keras_model(name.split("-")[0], args.channels)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy())
    for size in args.sizes:
        for batch in args.batches:
            x = rng.normal(size=(batch, size, size, args.channels)).astype("float32")
            y = (rng.random((batch, size, size, 1)) > 0.5).astype("float32")
            rows.append(dict(size=size, batch=batch,
                             train=images_per_second(lambda: model.train_on_batch(x, y), batch, args.seconds),
                             predict=images_per_second(lambda: model.predict_on_batch(x), batch, args.seconds)))
    return rows


def spawn(name: str, args) -> list[dict]:
    """Runs one worker in a fresh process on its backend; its rows."""
    backend = WORKERS[name][0]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--seconds", str(args.seconds),
               "--channels", str(args.channels),
               "--sizes", *map(str, args.sizes), "--batches", *map(str, args.batches)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"worker {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


# ----------------------------------------------------------------------------- FLOPs and the ceiling

def flop_tables(size: int = 256, channels: int = 3) -> dict:
    """Parameters, forward FLOPs per image and FLOPs by stride for the three models."""
    import peer_models

    smp_net = peer_models.smp_unet_plus_plus(imagenet=False, in_channels=channels)
    models = {prefix: keras_model(prefix, channels) for prefix in ARCHITECTURE}
    flops = {name: peer_models.conv_flops_keras(model, (1, size, size, channels)) for name, model in models.items()}
    flops["smp"] = peer_models.conv_flops_torch(smp_net, (1, channels, size, size))
    params = {name: model.count_params() for name, model in models.items()}
    params["smp"] = sum(p.numel() for p in smp_net.parameters())
    if abs(sum(flops["ours"].values()) / sum(flops["smp"].values()) - 1) > 0.05:
        raise RuntimeError("our compact_lite0's FLOPs differ from smp's by more than 5 %: not the same topology")
    by_stride = {name: stride_split_keras(models[name], flops[name], size) for name in models}
    by_stride["smp"] = stride_split_torch(smp_net, flops["smp"], size, channels)
    return {"size": size, "params": params, "gflop": {k: sum(v.values()) / 1e9 for k, v in flops.items()},
            "gflop_by_stride": by_stride}


def stride_split_keras(model, flops: dict, size: int) -> dict:
    """``{"encoder": GFLOP, "decoder stride S": GFLOP}`` of a Keras UNet++: a decoder node is
    named ``X_{i}_{j}`` (level i, stride 2**i); the encoder's layers live in its sub-model."""
    from keras_unetpp.models.unet_plus_plus import node_of

    decoder_layers = {layer.name for layer in model.layers}
    split: dict[str, float] = {}
    for name, value in flops.items():
        node = node_of(name) if name in decoder_layers else None
        if name.startswith("head_") and name in decoder_layers:
            key = "heads"
        elif node is None:
            key = "encoder"
        elif node[1] == 0:
            key = f"plain encoder node stride {2 ** node[0]}"
        else:
            key = f"decoder stride {2 ** node[0]}"
        split[key] = split.get(key, 0.0) + value / 1e9
    return dict(sorted(split.items()))


def stride_split_torch(network, flops: dict, size: int, channels: int = 3) -> dict:
    """The same split for smp: decoder blocks by the stride of their output."""
    import torch

    strides: dict[str, int] = {}
    hooks = [block.register_forward_hook(lambda m, i, o, name=name: strides.__setitem__(name, size // o.shape[-1]))
             for name, block in network.decoder.blocks.items()]
    network.eval()
    with torch.no_grad():
        network(torch.zeros(1, channels, size, size))
    for handle in hooks:
        handle.remove()
    split: dict[str, float] = {}
    for name, value in flops.items():
        if name.startswith("encoder."):
            key = "encoder"
        elif name.startswith("decoder.blocks."):
            key = f"decoder stride {strides[name.split('.')[2]]}"
        else:
            key = "heads"
        split[key] = split.get(key, 0.0) + value / 1e9
    return dict(sorted(split.items()))


def matmul_rates(n: int = 2048, seconds: float = 2.0) -> dict:
    """float32 GFLOP/s of an n x n matmul in TensorFlow and in torch (the ceiling for convolutions)."""
    import numpy as np
    import tensorflow as tf
    import torch

    a = np.random.default_rng(0).normal(size=(n, n)).astype("float32")
    ta, pa = tf.constant(a), torch.as_tensor(a)
    rates = {}
    for name, fn in {"tensorflow": lambda: tf.linalg.matmul(ta, ta).numpy(), "torch": lambda: pa @ pa}.items():
        rates[name] = images_per_second(fn, 2 * n ** 3 / 1e9, seconds)
    return rates


# ----------------------------------------------------------------------------- the report

def best_rows(rounds: list[dict]) -> dict:
    """``{worker: {(size, batch): row}}``, each measurement's best round."""
    best: dict = {}
    for one in rounds:
        for worker, rows in one.items():
            for row in rows:
                key = (row["size"], row["batch"])
                old = best.setdefault(worker, {}).get(key)
                best[worker][key] = {k: max(row[k], old[k]) if old and k in ("train", "predict") else row[k]
                                     for k in row}
    return best


def report(result: dict) -> str:
    flops, best = result["flops"], result["best"]
    gflop = {worker: flops["gflop"][worker.split("-")[0]] for worker in WORKERS}
    lines = [f"machine: {result['machine']}", "",
             f"| model | parameters | forward GFLOP / {flops['size']} px image |", "|---|---|---|"]
    names = {"ours": "ours: aerial default (compact_lite0)", "nested": "ours: nested decoder (nested_lite0)",
             "plain": "ours: lung default (plain)", "smp": "smp default (Lite0)"}
    for key, label in names.items():
        lines.append(f"| {label} | {flops['params'][key] / 1e6:.2f} M | {flops['gflop'][key]:.2f} |")
    lines += ["", "| where the work goes (GFLOP) | " + " | ".join(names.values()) + " |",
              "|---" * (len(names) + 1) + "|"]

    def order(key):   # encoder first, then the decoder by stride, heads last
        return (key != "encoder", key == "heads", int(key.split()[-1]) if key[-1].isdigit() else 0, key)

    split = flops["gflop_by_stride"]
    keys = sorted(set().union(*(split[name] for name in names)), key=order)
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(f"{split[name].get(key, 0):.2f}" for name in names) + " |")
    lines += ["", "matmul ceiling, float32 2048^2: " + ", ".join(f"{k} {v:.0f} GFLOP/s"
                                                                   for k, v in result["matmul"].items()), ""]
    lines += ["| model | px | batch | train img/s | predict img/s | train GFLOP/s | predict GFLOP/s |",
              "|---|---|---|---|---|---|---|"]
    for worker, rows in best.items():
        for (size, batch), row in sorted(rows.items()):
            per_image = gflop[worker] * (size / flops["size"]) ** 2   # convolutions scale with the area
            lines.append(f"| {WORKERS[worker][1]} | {size} | {batch} | {row['train']:.2f} | {row['predict']:.2f} | "
                         f"{3 * per_image * row['train']:.0f} | {per_image * row['predict']:.0f} |")
    if "smp" in best:
        lines += ["", "| ratio to smp (img/s) | px | batch | train | predict |", "|---|---|---|---|---|"]
        for worker, rows in best.items():
            if worker == "smp":
                continue
            for key, row in sorted(rows.items()):
                peer = best["smp"].get(key)
                if peer:
                    lines.append(f"| {WORKERS[worker][1]} | {key[0]} | {key[1]} | {row['train'] / peer['train']:.2f} | "
                                 f"{row['predict'] / peer['predict']:.2f} |")
    return "\n".join(lines)


def machine() -> str:
    """The CPU's model name and core count (Linux), else the platform's."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        flags = Path("/proc/cpuinfo").read_text()
        extras = [f for f in ("avx512f", "avx512_bf16", "amx_tile") if f" {f}" in flags]
        return f"{names[0]}, {os.cpu_count()} cores ({', '.join(extras) or 'no AVX-512'})"
    except (OSError, IndexError):
        return f"{platform.machine()}, {os.cpu_count()} cores"


def main(argv=None) -> dict | None:
    args = parse(argv)
    sys.path.insert(0, str(HERE))
    if args.worker:
        print("RESULT " + json.dumps(run_worker(args.worker, args)), flush=True)
        return None
    missing = missing_peers()
    if missing:
        print(f"skipped: {', '.join(missing)} not installed (pip install -e \".[peers,pretrained]\")")
        return None
    start = time.perf_counter()
    result = {"machine": machine(),
              "date": time.strftime("%Y-%m-%d"), "sizes": args.sizes, "batches": args.batches,
              "channels": args.channels, "flops": flop_tables(channels=args.channels),
              "matmul": matmul_rates(seconds=args.seconds), "rounds": []}
    for round_index in range(args.rounds):
        order = args.workers if round_index % 2 == 0 else args.workers[::-1]
        one = {}
        for name in order:
            print(f"round {round_index + 1}/{args.rounds}: {name}", flush=True)
            one[name] = spawn(name, args)
        result["rounds"].append(one)
    best = best_rows(result["rounds"])
    result["best"] = best
    text = report(result)
    print(text)
    result["best"] = {w: [dict(row) for row in rows.values()] for w, rows in best.items()}
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["table"] = text
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
