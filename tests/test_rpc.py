"""TVM cells on an RPC device (harness.backends.tvm.remote), on loopback: a tracker and a server
started with TVM's own ``python -m tvm.exec.rpc_tracker`` / ``rpc_server`` on 127.0.0.1, a cell built
here for the device's triple and CPU, uploaded, checked for parity against the local float64
reference, timed by the device's time_evaluator and stored under the device's profile. Loopback
proves the plumbing only: the "device" is this machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness.backends.tvm.remote import RemoteDevice, RemoteError, describe, needs_cross_compiler, parse_target

KEY = "infer-bench-loop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def loopback():
    """(tracker 'host:port', key): a tracker and one server registered under KEY; both killed after."""
    port, server_port = free_port(), free_port()
    common = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    tracker = subprocess.Popen(
        [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port)]
        + ["--port-end", str(port + 1)],
        **common,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{port}", "--key", KEY]
        + ["--host", "127.0.0.1", "--port", str(server_port), "--port-end", str(server_port + 1)],
        **common,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # until the tracker lends the device
            try:
                describe(RemoteDevice.parse(f"127.0.0.1:{port}", KEY), timeout_s=20)
                break
            except RemoteError:
                if time.monotonic() > deadline or tracker.poll() is not None or server.poll() is not None:
                    raise
                time.sleep(1)
        yield f"127.0.0.1:{port}", KEY
    finally:
        for proc in (server, tracker):  # the server forks a child per session: kill the group
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def test_options_are_checked_with_one_line():
    with pytest.raises(RemoteError, match="expected HOST:PORT"):
        RemoteDevice.parse("localhost", KEY)
    with pytest.raises(RemoteError, match="--rpc-key None: the key the device's RPC server registered"):
        RemoteDevice.parse("127.0.0.1:9190", None)
    with pytest.raises(RemoteError, match="is not -mtriple=, -mcpu= or -num-cores="):
        parse_target("llvm -mattr=+neon")
    with pytest.raises(RemoteError, match="-num-cores must be a positive integer"):
        parse_target("llvm -num-cores=0")
    assert parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -num-cores=4") == {
        "mtriple": "aarch64-linux-gnu",
        "mcpu": "cortex-a72",
        "num-cores": 4,
    }
    device = RemoteDevice.parse(
        "10.0.0.5:9190", "rasp4", "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -num-cores=4"
    )
    assert "give --rpc-cross-compiler (e.g. aarch64-linux-gnu-g++)" in needs_cross_compiler(device)
    assert needs_cross_compiler(RemoteDevice("h:1", "k", "x86_64-linux-gnu", "znver3", 2)) is None


def test_the_device_profile_is_the_device_kind_not_the_tracker():
    a = RemoteDevice("10.0.0.5:9190", "rasp4", "aarch64-linux-gnu", "cortex-a72", 4).profile()
    moved = RemoteDevice("10.0.0.9:9000", "rasp4", "aarch64-linux-gnu", "cortex-a72", 4).profile()
    other = RemoteDevice("10.0.0.5:9190", "rasp4", "aarch64-linux-gnu", "cortex-a76", 4).profile()
    assert a["profile_id"] == moved["profile_id"] != other["profile_id"]
    assert a["profile_id"].startswith("rpc-rasp4-cortex-a72-4cpu-")
    assert a["cpu_budget"]["effective_cpus"] == 4 and a["remote"]["tracker"] == "10.0.0.5:9190"


def test_a_tracker_that_does_not_answer_is_one_line():
    with pytest.raises(RemoteError) as info:
        describe(RemoteDevice.parse(f"127.0.0.1:{free_port()}", KEY), timeout_s=10)
    assert str(info.value).startswith("--rpc-tracker 127.0.0.1:") and "\n" not in str(info.value)
    assert f"--rpc-key {KEY}: no device lent within 10 s" in str(info.value)


@pytest.mark.process
def test_describe_asks_the_device(loopback):
    import tvm

    tracker, key = loopback
    device = describe(RemoteDevice.parse(tracker, key))
    assert device.triple == "x86_64-linux-gnu" and device.mcpu == tvm.target.codegen.llvm_get_system_cpu()
    assert device.cpus >= 1 and device.cpus_source == "the remote TVM thread pool's default size"
    named = describe(RemoteDevice.parse(tracker, key, "llvm -num-cores=2"))
    assert named.cpus == 2 and named.cpus_source == "num-cores of --rpc-target"


SUITE = """
from harness import Matrix

MATRIX = Matrix(models=["tiny_mlp"], backends=["torch", "tvm"], threads=["1"])


def test_latency(cell, measure_cell):
    measure_cell(cell)
"""


@pytest.mark.process
def test_a_tvm_cell_runs_on_the_loopback_device_and_is_stored_under_its_profile(pytester, run_plugin, loopback):
    tracker, key = loopback
    pytester.makepyfile(test_suite=SUITE)
    out = run_plugin(
        "--model-factory",
        "tests.tiny_models:tiny_mlp",
        "--rpc-tracker",
        tracker,
        "--rpc-key",
        key,
        "--rpc-target",
        "llvm -num-cores=2",
        "--processes",
        "2",
        "--benchmark-max-time",
        "0.2",
        "--benchmark-json=result.json",
        "--benchmark-storage=file://baselines",
        "--benchmark-save=loop",
        "-rs",
    )
    assert out.ret == pytest.ExitCode.OK, out.stdout.str()
    out.stdout.fnmatch_lines([f"*runs on this host; with --rpc-key {key} only tvm cells run (on it)*"])
    result = json.loads((pytester.path / "result.json").read_text())
    profile = result["machine_info"]["infer_bench"]
    assert profile["profile_id"].startswith(f"rpc-{key}-") and profile["remote"]["key"] == key
    (bench,) = result["benchmarks"]
    info = bench["extra_info"]
    assert info["backend"] == "tvm" and f"on RPC device {key}" in info["backend_label"]
    assert info["remote_key"] == key and info["remote_target"].startswith("x86_64-linux-gnu ")
    assert info["parity_passed"] is True
    assert info["threads_runtime"] == {"tvm_num_threads": 1}
    per_process = info["samples"]["per_process"]
    assert len(per_process) == 2 and all(len(g) >= 5 and min(g) > 0 for g in per_process)
    assert "control" not in result["infer_bench"] or not result["infer_bench"]["control"]
    saved = pytester.path / "baselines" / profile["profile_id"] / "0001_loop.json"
    assert saved.is_file()
