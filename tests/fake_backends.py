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
