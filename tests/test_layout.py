"""The package's shape: no import cycles between harness modules (function-level imports
included), the worker side imports no runtime before the thread environment is in place,
pytest stays in the plugin, nothing is unpickled and no process is started through a shell."""

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
    # plugin.bridge is where pytest-benchmark's own objects are used (its storage, its JSON dumps, its machine id)
    assert users == ["harness.plugin.bridge", "harness.plugin.hooks", "harness.plugin.options"]


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), {k.arg: k.value for k in node.keywords}, node


def _unsafe_calls(package: Path, root: Path) -> list[str]:
    unpicklers = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib", "cloudpickle"}
    problems = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        used = {m.split(".")[0] for m in _imports(path)} & unpicklers
        problems += [f"{path.name}: imports {m}" for m in sorted(used)]
        for func, keywords, node in _calls(tree):
            where = f"{path.relative_to(root)}:{node.lineno} {func}"
            if func in ("os.system", "os.popen", "os.execl", "os.execlp", "os.spawnl", "commands.getoutput"):
                problems.append(f"{where}: runs a shell")
            shell = keywords.get("shell")
            if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
                problems.append(f"{where}: shell=")
            if func.endswith("subprocess.Popen") or func.split(".")[-1] in (
                "run",
                "call",
                "check_call",
                "check_output",
            ):
                if func.startswith("subprocess") and node.args and isinstance(node.args[0], ast.Constant):
                    problems.append(f"{where}: a command line as one string")
            if func in ("torch.load",) and not (
                isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True
            ):
                problems.append(f"{where}: without weights_only=True")
            if func in ("np.load", "numpy.load") and not (
                isinstance(keywords.get("allow_pickle"), ast.Constant) and keywords["allow_pickle"].value is False
            ):
                problems.append(f"{where}: without allow_pickle=False")
    return problems


def test_nothing_is_unpickled_and_no_value_reaches_a_shell():
    """Across the package: no pickle-family module; torch.load only with weights_only=True and
    numpy.load only with allow_pickle=False; every process is started from an argument list
    (never shell=True, os.system or os.popen), so no model name, path or version is parsed by a shell."""
    assert _unsafe_calls(PACKAGE, ROOT) == []


def test_the_unsafe_call_scan_finds_what_it_looks_for(tmp_path):
    """The scan above is not vacuous: each planted unsafe call is reported."""
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "bad.py").write_text(
        "import pickle\nimport os, subprocess, torch, numpy as np\nos.system('ls')\n"
        "subprocess.run('ls', shell=True)\ntorch.load('w.pt')\nnp.load('a.npy')\n"
    )
    assert _unsafe_calls(tmp_path / "harness", tmp_path) == [
        "bad.py: imports pickle",
        "harness/bad.py:3 os.system: runs a shell",
        "harness/bad.py:4 subprocess.run: shell=",
        "harness/bad.py:4 subprocess.run: a command line as one string",
        "harness/bad.py:5 torch.load: without weights_only=True",
        "harness/bad.py:6 np.load: without allow_pickle=False",
    ]
