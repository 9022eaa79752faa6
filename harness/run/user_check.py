"""A user's model, checked once before any worker starts: ``vet`` runs ``check`` in a short-lived
process (``python -m harness.run.user_check SPEC RESULT``), so a model that crashes or hangs
its loader cannot take the pytest process down, and answers with plain JSON.

For an ONNX file (``--model-file``, or a suite's ``ModelFile(...)``), in this order:

1. the file exists, is not empty and parses as an ONNX protobuf (truncated files, other formats);
2. every external-data location stays inside the model's folder: absolute paths, ``..`` and
   symlinks pointing out are refused *before* onnx or a runtime reads them;
3. ``onnx.checker``, the IR version and opsets this onnx knows;
4. the input shapes: dynamic dims given with ``--input-shape``, names, ranks and fixed dims agree;
5. each ONNX importer the run's backends use (``Backend.onnx_importer``): ONNX Runtime's IR and
   opset limits (a file past them is refused: exit 4 with what to do), then whether it can create a
   session for the graph; TVM's Relax frontend: whether it has a converter for every operator.
   An importer that cannot take the graph makes its backends' cells *skip* with the operator named
   (a capability of that runtime, like a missing package); the other backends still run the model.

For a torch factory (``--model-factory``): it imports, runs, returns (module, example inputs) and
the module's forward runs on them.

Anything wrong in 1-4 or with a factory is a ``UserModelError``: one line naming the file or the
factory and what to do. The command line turns it into a usage error (exit code 4); a suite's
broken model file fails that model's cells only (harness.plugin.session)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness import PROJECT_ROOT
from harness.models.user import UserModelError, first_line
from harness.run.launcher import describe_exit, kill_group, python_env, stderr_tail
from harness.store.io import read_json, write_json

CHECK_TIMEOUT_S = 300.0  # building a large factory model can take a while; a hang ends here


@dataclass(frozen=True)
class Vetted:
    """What the check found: the model's inputs, and the importers that cannot take it."""

    inputs: list = field(default_factory=list)  # [{"name", "shape", "dtype"}]
    refused: dict = field(default_factory=dict)  # importer ("onnxruntime", "tvm") -> one-line reason


def describe_source(options: dict) -> str:
    if options.get("model_file"):
        return f"--model-file {options['model_file']}"
    return f"--model-factory {options.get('model_factory')}"


def vet(
    options: dict,
    importers: set[str] | frozenset[str] = frozenset(),
    where: str | None = None,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> Vetted:
    """Check a user model (its worker options) in a fresh process started like a worker (same
    directory, same PYTHONPATH: what imports here imports there); UserModelError with one line
    starting with ``where`` (default: the option and the path as in ``options``)."""
    where = where or describe_source(options)
    with tempfile.TemporaryDirectory(prefix="infer-bench-check-") as tmp:
        spec, answer, err = Path(tmp) / "spec.json", Path(tmp) / "answer.json", Path(tmp) / "stderr.txt"
        write_json(spec, {"options": options, "importers": sorted(importers), "where": where})
        env = python_env(dict(os.environ, PYTHONFAULTHANDLER="1", OMP_NUM_THREADS="1"))
        with open(err, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.run.user_check", str(spec), str(answer)],
                env=env,
                cwd=str(PROJECT_ROOT),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # a timeout ends whatever the model started, too
            )
            try:
                returncode = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                raise UserModelError(f"{where}: checking it did not finish in {timeout_s:g}s") from None
        if not answer.exists():  # an answer counts even if the process died after writing it
            tail = stderr_tail(err, 2)
            why = describe_exit(returncode, who="the process checking it")
            raise UserModelError(f"{where}: {why} before answering{'; ' + tail if tail else ''}")
        data = read_json(answer)
    if data.get("error"):
        raise UserModelError(data["error"])
    return Vetted(data.get("inputs", []), data.get("refused", {}))


# -- in the checking process ------------------------------------------------------------------
def ort_limits() -> tuple[int, int]:
    """(highest IR version, highest ai.onnx opset) the installed ONNX Runtime loads, found by
    asking it about a one-node graph (it has no API for them)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", io[:1], io[1:])

    def loads(ir: int, opset: int) -> bool:
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            return True
        except Exception:
            return False

    ir = next((v for v in range(onnx.IR_VERSION + 2, 3, -1) if loads(v, 13)), 3)
    opset = next((v for v in range(onnx.defs.onnx_opset_version() + 2, 6, -1) if loads(ir, v)), 7)
    return ir, opset


def _ort_refusal(exc: Exception) -> str:
    """ORT's message without its code and C++ source location:
    '[ONNXRuntimeError] : 1 : FAIL : /src/model.cc:256 void f(...) text' -> 'text'."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", " ".join(str(exc).split()))
    text = re.sub(r"Fatal error: |(?:/\S+/)?\S+\.(?:cc|h):\d+ [^()]*\([^()]*\) ", "", text)
    return text[:300]


def _check_ort(model, path: str, opset: int, where: str) -> str | None:
    """None if ONNX Runtime can create a session for the file; else why not. Raises
    UserModelError when the file is past the IR or opset ONNX Runtime reads."""
    import onnxruntime as ort

    max_ir, max_opset = ort_limits()
    if model.ir_version > max_ir:
        raise UserModelError(
            f"{where}: ONNX IR version {model.ir_version}, but onnxruntime {ort.__version__} reads IR <= "
            f"{max_ir}: re-save it with ir_version {max_ir} (if it uses no newer IR feature), or leave the "
            f"ONNX Runtime backends out (--backends)"
        )
    if opset > max_opset:
        raise UserModelError(
            f"{where}: opset {opset}, but onnxruntime {ort.__version__} reads opsets <= {max_opset}: "
            f"convert it (onnx.version_converter.convert_version(model, {max_opset})), or leave the ONNX Runtime "
            f"backends out (--backends)"
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    try:
        # from the file (its external data was checked and is read beside it), not re-serialized
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        return f"onnxruntime {ort.__version__} cannot load the graph: {_ort_refusal(exc)}"
    return None


def _check_tvm(model) -> str | None:
    """None if TVM's Relax ONNX frontend has a converter for every operator of the main graph."""
    import tvm
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    known = set(_get_convert_map()) | {"Constant", "If"}  # the two its importer handles itself
    missing = sorted({n.op_type for n in model.graph.node if n.op_type not in known})
    if missing:
        return f"TVM {tvm.__version__}'s Relax ONNX frontend has no converter for {', '.join(missing)}"
    return None


def check_file(path: str, shapes: dict[str, tuple[int, ...]], importers: set[str], where: str) -> dict:
    from harness.models.user import read_model_file

    model, opset, specs = read_model_file(path, shapes, where)
    refused = {}
    if "onnxruntime" in importers:
        reason = _check_ort(model, path, opset, where)
        if reason:
            refused["onnxruntime"] = reason
    if "tvm" in importers:
        reason = _check_tvm(model)
        if reason:
            refused["tvm"] = reason
    return {"inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs], "refused": refused}


def check_factory(spec: str) -> dict:
    import torch

    from harness.models.user import build_from_factory

    model = build_from_factory(spec)  # import, call, types: UserModelError with one line
    inputs = [torch.from_numpy(x) for x in model.make_inputs(0)]
    try:
        with torch.no_grad():
            model.torch_module()(*inputs)
    except Exception as exc:  # the user's forward raised
        shapes = ", ".join("x".join(map(str, s.shape)) for s in model.inputs)
        raise UserModelError(
            f"--model-factory {spec}: the module's forward fails on its example inputs ({shapes}): {first_line(exc)}"
        ) from None
    return {"inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in model.inputs]}


def check(options: dict, importers: set[str], where: str | None = None) -> dict:
    where = where or describe_source(options)
    if options.get("model_file"):
        shapes = {k: tuple(v) for k, v in (options.get("input_shapes") or {}).items()}
        return check_file(options["model_file"], shapes, importers, where)
    return check_factory(options["model_factory"])


def main(argv: list[str]) -> int:
    spec = read_json(argv[0])
    where = spec.get("where") or describe_source(spec["options"])
    try:
        answer = check(spec["options"], set(spec.get("importers", [])), where)
    except UserModelError as exc:
        answer = {"error": str(exc)}
    except Exception as exc:  # the user's code raised something of its own while being built
        answer = {"error": f"{where}: {first_line(exc)}"}
    write_json(argv[1], answer)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stderr.flush()
    code = main(sys.argv[1:])
    os._exit(code)  # the answer is written: a crash or a hang in a runtime's teardown cannot undo it
