"""The package's shape: no import cycles between harness modules (function-level imports
included), the worker side imports no runtime before the thread environment is in place, and
pytest stays in the plugin."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "harness"
RUNTIMES = {"torch", "onnxruntime", "tvm", "onnx"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import; the project uses absolute imports"
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep) :] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_worker_side_loads_no_runtime_before_the_cell_asks_for_one():
    child = [
        "harness/__init__.py",
        "harness/run/protocol.py",
        "harness/run/worker.py",
        "harness/run/timing.py",
        "harness/plan/cell.py",
        "harness/machine/threads.py",
        "harness/machine/load.py",
        "harness/store/io.py",
    ]
    for name in child:
        heavy = {m.split(".")[0] for m in _imports(ROOT / name, top_level_only=True)} & RUNTIMES
        assert not heavy, f"{name} imports {heavy} at module level"


def test_pytest_is_imported_by_the_plugin_only():
    users = sorted(
        _module(p)
        for p in PACKAGE.rglob("*.py")
        if any(m.split(".")[0] in ("pytest", "_pytest", "pytest_benchmark") for m in _imports(p))
    )
    # store.baselines names its folder with pytest-benchmark's machine id (pytest_benchmark.utils)
    assert users == ["harness.plugin.hooks", "harness.plugin.options", "harness.store.baselines"]
