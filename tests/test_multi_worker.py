"""Several machines, tested on one: two TensorFlow worker processes on loopback ports
(``MultiWorkerMirroredStrategy``, each with its ``TF_CONFIG``) train what one process trains on the
same global batches, the crop stream is split between them exactly, and a killed worker resumes
from ``BackupAndRestore`` to the weights of an uninterrupted run.

Every process is started by the test, bound to 127.0.0.1, given a timeout, and ended by the test.
The worker is ``tests/multi_worker_job.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,  # trains, runs subprocesses or exports: the full lane only
    pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                       reason="MultiWorkerMirroredStrategy is TensorFlow's"),
]

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "tests" / "multi_worker_job.py"
TIMEOUT = 300  # seconds for any one process
TOLERANCE = 1e-4  # as the two-device test (tests/models/test_distributed.py)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _environment(cluster: list[str] | None, index: int | None, backend: str = "tensorflow") -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    if cluster is not None:
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
    return env


def _start(args: list[str], log: Path, cluster=None, index=None, backend="tensorflow") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(JOB), *args], cwd=ROOT, env=_environment(cluster, index, backend),
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _finish(processes: list[subprocess.Popen], logs: list[Path]) -> None:
    """Waits for every process (each within TIMEOUT) and ends any left; fails with its log on error."""
    deadline = time.monotonic() + TIMEOUT
    try:
        for process, log in zip(processes, logs):
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert code == 0, f"{log.name} exited with {code}:\n{log.read_text()[-3000:]}"
    finally:
        for process in processes:
            _end(process)


def _end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _cluster(tmp_path: Path, job: list[str], tag: str, extra: list[list[str]] | None = None) -> list[Path]:
    """Runs ``job`` on a two-worker loopback cluster; returns the workers' logs."""
    cluster = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    logs = [tmp_path / f"{tag}_worker{i}.log" for i in range(2)]
    processes = [_start(job + (extra[i] if extra else []), logs[i], cluster, i) for i in range(2)]
    _finish(processes, logs)
    return logs


def _single(tmp_path: Path, job: list[str], tag: str) -> None:
    log = tmp_path / f"{tag}_single.log"
    _finish([_start(job, log)], [log])


def _weights(npz) -> list[np.ndarray]:
    return [npz[k] for k in sorted((k for k in npz.files if k.startswith("w")), key=lambda k: int(k[1:]))]


def _gap(a, b) -> float:
    return max(float(np.max(np.abs(p - q))) for p, q in zip(_weights(a), _weights(b)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process on the global batches, and the control: one process on half-size batches."""
    out = tmp_path_factory.mktemp("single")
    _single(out, ["train", str(out)], "reference")
    control = tmp_path_factory.mktemp("control")
    _single(control, ["train", str(control), "--global-batch", "2"], "control")
    return np.load(out / "single.npz"), np.load(control / "single.npz")


def test_two_workers_on_loopback_train_what_one_process_trains(tmp_path, reference):
    single, control = reference
    _cluster(tmp_path, ["train", str(tmp_path)], "train")
    workers = [np.load(tmp_path / f"{i}.npz") for i in range(2)]
    # the two workers hold one model: identical weights
    assert _gap(workers[0], workers[1]) == 0.0
    # ... and it is the one-process model of the same global batches
    assert _gap(workers[0], single) < TOLERANCE
    assert float(np.max(np.abs(workers[0]["prediction"] - single["prediction"]))) < TOLERANCE
    # the control (same data, other batches) is far outside that tolerance: the comparison can fail
    assert _gap(control, single) > 100 * TOLERANCE


def test_crop_stream_is_split_between_workers_whose_union_is_the_single_stream(tmp_path):
    _cluster(tmp_path, ["crops", str(tmp_path)], "crops")
    _single(tmp_path, ["crops", str(tmp_path)], "crops")
    first, second, whole = (np.load(tmp_path / f"crops_{t}.npy") for t in (0, 1, "single"))
    assert first.shape == second.shape == (3, 2, 8, 8, 3) and whole.shape == (3, 4, 8, 8, 3)
    for step in range(3):
        assert not np.array_equal(first[step], second[step])  # distinct batches
        np.testing.assert_array_equal(np.concatenate([first[step], second[step]]), whole[step])


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        assert process.poll() is None, f"{log.name} ended early:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"{log.name} did not print {text!r} within {seconds} s")


def test_killed_worker_resumes_from_its_backup_to_the_uninterrupted_weights(tmp_path, reference):
    single, _ = reference
    cluster = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    backups = [["--backup", str(tmp_path / f"backup{i}")] for i in range(2)]
    logs = [tmp_path / f"first_worker{i}.log" for i in range(2)]
    # worker 1 waits after its first epoch's backup; the test then kills it (SIGKILL, no clean-up)
    processes = [_start(["train", str(tmp_path), *backups[0]], logs[0], cluster, 0),
                 _start(["train", str(tmp_path), *backups[1], "--pause-after", "0"], logs[1], cluster, 1)]
    try:
        _wait_for_line(logs[1], "EPOCH_DONE 0", processes[1], TIMEOUT)
        os.killpg(processes[1].pid, signal.SIGKILL)
        processes[1].wait(timeout=30)
        killed = time.monotonic()
        # What the surviving worker does while its peer is down: it stops with an error
        # (TensorFlow's coordination service notices the missing heartbeat), or it waits.
        try:
            code = processes[0].wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        print("surviving worker: " + ("still waiting after 120 s" if code is None else
                                      f"exit code {code} {time.monotonic() - killed:.0f} s after the kill"))
        assert code != 0  # it never reports success without its peer
    finally:
        for process in processes:
            _end(process)
    assert not (tmp_path / "0.npz").exists()  # nobody finished
    # restarted with the same arguments, both workers resume after epoch 0 and finish
    resumed = _cluster(tmp_path, ["train", str(tmp_path)], "resumed", backups)
    workers = [np.load(tmp_path / f"{i}.npz") for i in range(2)]
    assert _gap(workers[0], workers[1]) == 0.0
    assert _gap(workers[0], single) < TOLERANCE
    assert all("EPOCH_DONE 0" not in log.read_text() for log in resumed)  # epoch 0 came from the backup


DATA = Path(os.environ.get("KERAS_UNETPP_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.mark.skipif(not (DATA / "lung-xray").is_dir(),
                    reason=f"real data not found at {DATA / 'lung-xray'} (set KERAS_UNETPP_DATA)")
def test_example_distribute_flag_trains_one_model_on_two_workers(tmp_path):
    """``examples/lung_xray.py --distribute`` with TF_CONFIG on two workers: one model, twice the device count."""
    cluster = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    logs = [tmp_path / f"example_worker{i}.log" for i in range(2)]
    processes = [subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "lung_xray.py"), "--quick", "--distribute",
         "--data", str(DATA / "lung-xray"), "--out", str(tmp_path / f"w{i}")],
        cwd=ROOT, env=_environment(cluster, i), stdout=open(logs[i], "w"), stderr=subprocess.STDOUT,
        start_new_session=True) for i in range(2)]
    _finish(processes, logs)
    runs = [json.loads((tmp_path / f"w{i}" / "metrics.json").read_text())["runs"]["all"][0] for i in range(2)]
    assert runs[0]["overall"] == runs[1]["overall"] and runs[0]["history"] == runs[1]["history"]
    # the peak learning rate scales with the replicas in sync: 2 workers -> 2 x 2e-3 (cosine from there)
    first_lr = runs[0]["history"]["lr"][0]
    assert 2e-3 < first_lr <= 4e-3, first_lr


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_two_jax_processes_on_loopback_train_what_one_process_trains(tmp_path):
    """``keras.distribution.initialize`` with two processes on 127.0.0.1 (JAX's CPU collectives, gloo)."""
    coordinator = f"127.0.0.1:{_free_ports(1)[0]}"
    logs = [tmp_path / f"jax{i}.log" for i in range(2)]
    processes = [_start(["train-jax", str(tmp_path), "--coordinator", coordinator, "--process", str(i)], logs[i],
                        backend="jax") for i in range(2)]
    _finish(processes, logs)
    single_log = tmp_path / "jax_single.log"
    _finish([_start(["train-jax", str(tmp_path)], single_log, backend="jax")], [single_log])
    first, second, single = (np.load(tmp_path / f"jax_{t}.npz") for t in (0, 1, "single"))
    assert _gap(first, second) == 0.0
    assert _gap(first, single) < TOLERANCE

