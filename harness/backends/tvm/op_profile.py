"""The ``tvm`` backends' per-operator profile (``TvmCompiled.profile_ops``, harness.compare.op_profile).

TVM 0.27's Relax VM has no profiler of its own (``VirtualMachine`` takes no ``profile=``, and its
runtime registers no profiling functions); what it has is an instrument, a function the VM calls
before and after every Call instruction with the callee's symbol. The profile is the wall time
between the two, per call, over ``runs`` calls of ``main`` after one warm-up call (its times are
dropped): the compiled PrimFuncs (``fused_matmul_add_gelu1``) and the VM's builtins (allocation,
shape checks). Each time includes the instrument's own round trip (back from Python into the VM, the
callee's arguments converted for the call after: 1-2 us, where a tiny MLP's whole inference takes
3 us); the least time of any call (a no-op builtin's, ``vm.builtin.null_value``) is taken as that
round trip and subtracted from every call. What is left of it (more arguments convert slower) puts
the total above the timed median.

A PrimFunc's operator type comes from its name, which Relax's legalisation and fusion make (the
legalised ops' names joined after ``fused_``, numbers added to tell copies apart: ``matmul4_add3``):
the name without ``fused_`` and the numbers, read as known op names (harness.compare.op_profile ``fused_op_type``: the
fusion's anchor, a matmul, convolution, pooling, normalisation or softmax, else the first op);
the function's full name is the node. The VM's builtins are one type, ``vm.builtin``."""

from __future__ import annotations

import re
from collections.abc import Collection

from harness.compare.op_profile import fused_op_type

VM_INSTRUMENT = "TVM Relax VM instrument (wall time per call)"
BUILTIN_PREFIX = "vm.builtin."
BUILTIN = "vm.builtin"
# TOPI compute names the legalisation uses where they differ from the Relax op's name
LEGALISED_NAMES = frozenset({"transpose", "cast", "dense", "NT_matmul", "batch_matmul"})
_COPY_NUMBER = re.compile(r"\d+$")


def known_op_names() -> frozenset[str]:
    """The last component of every registered Relax op's name (``relax.nn.layer_norm`` ->
    ``layer_norm``), plus the legalised names that differ from them."""
    import tvm

    names = {name.rsplit(".", 1)[-1] for name in tvm.ir.Op.list_op_names() if name.startswith("relax.")}
    return frozenset(names) | LEGALISED_NAMES


def op_type_of(function: str, known: Collection[str]) -> str:
    """The operator type of a called function's symbol (see the module's docstring)."""
    if function.startswith(BUILTIN_PREFIX):
        return BUILTIN
    name = function
    while name.startswith("fused_"):
        name = name[len("fused_") :]
    if name in known:
        return name
    words = [w if w in known else _COPY_NUMBER.sub("", w) or w for w in name.split("_")]
    return fused_op_type("_".join(words), known)


def profile_vm(vm, args: list, runs: int):
    """The op profile of ``runs`` calls of ``vm``'s ``main`` on device arrays ``args``, through the
    VM's instrument (removed afterwards)."""
    import time

    import tvm

    from harness.compare.op_profile import NodeTime, aggregate

    known = known_op_names()
    started: list[int] = []
    calls: list[tuple[str, int]] = []

    def instrument(func, symbol, before_run, ret_value, *call_args):
        if before_run:
            started.append(time.perf_counter_ns())
        else:
            calls.append((symbol, time.perf_counter_ns() - started.pop()))
        return 0  # VMInstrumentReturnKind.NO_OP: run the call

    main = vm["main"]
    vm.set_instrument(instrument)
    try:
        main(*args)  # warm-up: its times are dropped
        calls.clear()
        for _ in range(runs):
            main(*args)
    finally:
        vm.set_instrument(None)
    floor = min((ns for _, ns in calls), default=0)  # the instrument's own round trip (a no-op builtin's)
    times = [NodeTime(op_type_of(symbol, known), symbol, (ns - floor) / 1e3) for symbol, ns in calls]
    return aggregate(times, source=VM_INSTRUMENT, runtime=f"tvm {tvm.__version__}", runs=runs)
