"""Test-only backends that misbehave on purpose. Registered through INFER_BENCH_BACKENDS, e.g.
``INFER_BENCH_BACKENDS="abort=tests.fake_backends:Abort"``; worker processes inherit it."""

from __future__ import annotations

import os
import signal
import sys
import time

from harness.backends.base import Backend
from harness.backends.torch_eager import TorchEager


class _Fake(Backend):
    module = ""

    def version(self):
        return "test"


class Abort(_Fake):
    name = "abort"

    def compile(self, model, target, threads, example):
        print("about to abort", file=sys.stderr, flush=True)
        os.abort()


class Segfault(_Fake):
    name = "segfault"

    def compile(self, model, target, threads, example):
        print("about to segfault", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)


class MemoryHog(_Fake):
    name = "hog"

    def compile(self, model, target, threads, example):
        print("allocating until stopped", file=sys.stderr, flush=True)
        held = []
        while True:  # touched pages: counted by the memory cgroup
            held.append(bytearray(32 * 2**20))


class Hang(_Fake):
    name = "hang"

    def compile(self, model, target, threads, example):
        print("hanging now", file=sys.stderr, flush=True)
        time.sleep(3600)


class Raises(_Fake):
    name = "raises"

    def compile(self, model, target, threads, example):
        raise RuntimeError("the in-house compiler rejected op 'Gelu'")


class Missing(_Fake):
    name = "missing"

    def version(self):
        import package_that_does_not_exist  # noqa: F401


class WrongAnswer(TorchEager):
    """Eager torch whose outputs are off by 1% of their scale: must fail parity."""

    name = "wrong"

    def compile(self, model, target, threads, example):
        compiled = super().compile(model, target, threads, example)
        inner = compiled.run
        compiled.run = lambda inputs: [o + 0.01 * (abs(o).max() + 1) for o in inner(inputs)]
        return compiled


class EnvReport(TorchEager):
    """Eager torch that reports what torch picked up from the environment at import, before the
    backend's own torch.set_num_threads call."""

    name = "envreport"

    def compile(self, model, target, threads, example):
        import torch

        at_import = torch.get_num_threads()
        compiled = super().compile(model, target, threads, example)
        info = compiled.thread_info
        compiled.thread_info = lambda: {
            **info(),
            "torch_threads_at_import": at_import,
            "omp_env_seen": os.environ.get("OMP_NUM_THREADS"),
        }
        return compiled


class CrashSecond(TorchEager):
    """Works in the first worker process, aborts in every later one (CRASH_FLAG file marks it)."""

    name = "crashsecond"

    def compile(self, model, target, threads, example):
        flag = os.environ["CRASH_FLAG"]
        if os.path.exists(flag):
            os.abort()
        open(flag, "w").close()
        return super().compile(model, target, threads, example)


class Sleeper(TorchEager):
    """Eager torch whose every timed call also sleeps INFER_BENCH_SLEEP_MS milliseconds: a known
    latency that CPU load barely moves (a sleeping worker does not compete for the CPU), for tests
    of the verdict wiring whose outcome must not depend on how busy the machine is."""

    name = "sleeper"

    def compile(self, model, target, threads, example):
        compiled = super().compile(model, target, threads, example)
        delay = float(os.environ.get("INFER_BENCH_SLEEP_MS", "1")) / 1e3
        prepare = compiled.prepare

        def sleeping_prepare(inputs):
            run = prepare(inputs)

            def timed():
                out = run()
                time.sleep(delay)
                return out

            return timed

        compiled.prepare = sleeping_prepare
        return compiled


def _busy_wait(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Slowed(Backend):
    """A real backend (INFER_BENCH_SLOW_INNER, default ort) whose every timed call is followed by a
    busy-wait of INFER_BENCH_SLOWDOWN (a fraction, default 0) of its own median call time,
    calibrated at compile time: an injected, known regression."""

    name = "slowed"
    module = ""

    def version(self):
        from harness.backends import get_backend

        return get_backend(os.environ.get("INFER_BENCH_SLOW_INNER", "ort")).version()

    def compile(self, model, target, threads, example):
        import statistics

        from harness.backends import get_backend

        inner = get_backend(os.environ.get("INFER_BENCH_SLOW_INNER", "ort")).compile(model, target, threads, example)
        fraction = float(os.environ.get("INFER_BENCH_SLOWDOWN", "0"))
        step = inner.prepare(example)
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        delay = fraction * statistics.median(times)
        prepare = inner.prepare

        def slowed_prepare(inputs):
            run = prepare(inputs)

            def timed():
                out = run()
                _busy_wait(delay)
                return out

            return timed

        inner.prepare = slowed_prepare
        inner.label = f"{inner.label} + {fraction:.0%} busy-wait"
        return inner


# -- one bad behaviour each, switched on by an environment variable: the same backend name (the same
# cell id) is the baseline without it and the current run with it. They sleep in every timed call
# like Sleeper (INFER_BENCH_SLEEP_MS), so that their latency and first inference barely move with
# the machine's load.


class Leaky(Sleeper):
    """With INFER_BENCH_LEAK_MB set, holds that many MiB of touched memory from its first
    ``prepare`` on (after compile, before the first inference is timed): the model's memory grows,
    its compile time, first inference, latency and outputs do not."""

    name = "leaky"

    def compile(self, model, target, threads, example):
        compiled = super().compile(model, target, threads, example)
        leak_mb = float(os.environ.get("INFER_BENCH_LEAK_MB", "0"))
        prepare = compiled.prepare

        def leaking_prepare(inputs):
            if leak_mb and not hasattr(compiled, "leaked"):
                compiled.leaked = bytearray(b"\x01") * int(leak_mb * 2**20)  # written: every page resident
            return prepare(inputs)

        compiled.prepare = leaking_prepare
        return compiled


class SlowCompile(Sleeper):
    """Compiles in 0.1 s (a sleep) plus INFER_BENCH_COMPILE_DELAY_S seconds (default 0)."""

    name = "slowcompile"

    def compile(self, model, target, threads, example):
        time.sleep(0.1 + float(os.environ.get("INFER_BENCH_COMPILE_DELAY_S", "0")))
        return super().compile(model, target, threads, example)


class Drifting(Sleeper):
    """With INFER_BENCH_DRIFT=1, every output of ``run`` (what parity checks) is moved by half the
    parity budget's relative floor (ParityPolicy.rel_floor / 2 of the output's scale), alternately
    up and down: eager torch's own error is the fp32 reference's, so parity still passes, while the
    max relative error against float64 grows by far more than 10x (most on the small elements)."""

    name = "drifting"

    def compile(self, model, target, threads, example):
        import numpy as np

        from harness.run.parity import ParityPolicy

        compiled = super().compile(model, target, threads, example)
        if os.environ.get("INFER_BENCH_DRIFT", "0") not in ("", "0"):
            inner, share = compiled.run, ParityPolicy().rel_floor / 2

            def drifting_run(inputs):
                outs = []
                for o in inner(inputs):
                    signs = np.where(np.arange(o.size).reshape(o.shape) % 2, 1.0, -1.0)
                    outs.append((o + share * np.abs(o).max() * signs).astype(o.dtype))
                return outs

            compiled.run = drifting_run
        return compiled


class OpSlowed(TorchEager):
    """Eager torch whose one operator type gets slower on purpose: with INFER_BENCH_SLOW_OP set to a
    torch.nn module class name (e.g. ``GELU``), every such module of (a copy of) the model runs its
    forward INFER_BENCH_SLOW_OP_REPEAT (default 10) more times per call and returns its last result.
    The outputs do not change; torch.profiler puts the extra time in that module's op (``aten::gelu``
    for GELU), and nothing else moves: the op a per-op diff must name."""

    name = "opslowed"

    def compile(self, model, target, threads, example):
        import copy

        compiled = super().compile(model, target, threads, example)
        kind = os.environ.get("INFER_BENCH_SLOW_OP", "")
        if not kind:
            return compiled
        repeat = int(os.environ.get("INFER_BENCH_SLOW_OP_REPEAT", "10"))
        compiled.module = copy.deepcopy(compiled.module)  # the model's own module stays as it is
        slowed = [m for m in compiled.module.modules() if type(m).__name__ == kind]
        if not slowed:
            raise ValueError(f"opslowed: {model.name} has no {kind} module (INFER_BENCH_SLOW_OP): name one it has")
        for module in slowed:

            def repeated(*args, _forward=module.forward, **kwargs):
                for _ in range(repeat):
                    _forward(*args, **kwargs)
                return _forward(*args, **kwargs)

            module.forward = repeated
        compiled.label = f"{compiled.label} + {kind} run {repeat + 1}x"
        return compiled
