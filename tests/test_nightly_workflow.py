"""The shipped nightly workflow (.github/workflows/nightly.yml) parses, is wired as its comment
says (a matrix over runners x shards, one queued concurrency group per runner, artifacts the judge
downloads, the gate steps failing the job), installs as the README does, and every command it runs
exists: each ``python -m harness`` command line parses with the harness's own parser, and each
option of its ``pytest`` runs is one this project's pytest knows."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
INSTALL = "python -m pip install -r requirements/linux-x86_64-cpu.txt && python -m pip install --no-deps -e ."


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def commands(workflow: dict) -> list[tuple[str, list[str]]]:
    """(job, argv) for every command of every run step, GitHub expressions replaced by sample values."""
    values = {"matrix.shard": "2", "env.SHARDS": str(workflow["env"]["SHARDS"]), "matrix.runner": "infer-bench-epyc"}
    found = []
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            script = re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: values.get(m[1], "x"), step.get("run", ""))
            for line in script.replace("\\\n", " ").splitlines():
                for part in re.split(r"&&|\|\||;|\bthen\b|\bdo\b", line):
                    argv = shlex.split(part.split(">>")[0], comments=True)
                    if argv:
                        found.append((job_name, argv))
    return found


def harness_argv(argv: list[str]) -> list[str] | None:
    if argv[:3] == ["python", "-m", "harness"]:
        return argv[3:]
    return None


def test_the_workflow_parses_and_is_wired_as_documented(workflow):
    on = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "schedule" in on and "workflow_dispatch" in on
    measure, judge = workflow["jobs"]["measure"], workflow["jobs"]["judge"]
    matrix = measure["strategy"]["matrix"]
    assert matrix["shard"] == list(range(1, workflow["env"]["SHARDS"] + 1))
    assert judge["strategy"]["matrix"]["runner"] == matrix["runner"] and len(matrix["runner"]) >= 1
    assert measure["runs-on"] == ["self-hosted", "${{ matrix.runner }}"]
    # one group per runner, shards queued behind each other, never cancelled (the default queue of one
    # pending job would cancel all but the last shard waiting for a runner)
    assert measure["concurrency"] == {
        "group": "infer-bench-timed-${{ matrix.runner }}",
        "cancel-in-progress": False,
        "queue": "max",
    }
    assert measure["strategy"]["fail-fast"] is False
    uploaded = next(s for s in measure["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    downloaded = next(s for s in judge["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    assert uploaded["with"]["name"] == "shard-${{ matrix.runner }}-${{ matrix.shard }}"
    assert downloaded["with"]["pattern"] == "shard-${{ matrix.runner }}-*"
    assert judge["needs"] == "measure" and "cancelled()" in judge["if"]
    gates = {s["id"] for s in judge["steps"] if s.get("continue-on-error")}
    assert gates == {"compare", "changepoints"}
    final = judge["steps"][-1]
    assert all(f"steps.{g}.outcome == 'failure'" in final["if"] for g in gates) and "exit 1" in final["run"]
    assert any(
        s.get("uses", "").startswith("actions/upload-artifact") and s["with"]["path"] == "report/"
        for s in judge["steps"]
    )


def test_the_workflow_installs_as_the_readme_does(workflow):
    readme = (ROOT / "README.md").read_text()
    assert INSTALL in readme
    for job in workflow["jobs"].values():
        install = next(s for s in job["steps"] if s.get("name") == "Install the locked environment")
        assert INSTALL in install["run"]


def test_every_harness_command_of_the_workflow_parses(workflow):
    parser = build_parser()
    seen = set()
    for job, argv in commands(workflow):
        args = harness_argv(argv)
        if args is None:
            continue
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{job}: python -m harness {' '.join(args)} does not parse")
        seen.add(parsed.command)
    assert seen == {"merge", "compare", "history", "report", "baseline"}


def test_every_pytest_option_of_the_workflow_exists():
    """The options of the workflow's pytest runs against this project's ``pytest --help`` (plugin loaded)."""
    runs = [
        argv for _, argv in commands(yaml.safe_load(WORKFLOW.read_text())) if argv[:3] == ["python", "-m", "pytest"]
    ]
    assert runs
    helptext = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    for argv in runs:
        for option in (a.split("=")[0] for a in argv if a.startswith("--")):
            assert re.search(rf"(^|[\s,]){re.escape(option)}([\s=,]|$)", helptext, re.M), f"pytest has no {option}"
        assert argv[3] == "suites/" and (ROOT / "suites").is_dir()


def test_the_workflows_other_commands_are_the_ones_expected(workflow):
    """Anything else the workflow runs is shell or git plumbing, listed here so that a new tool is seen."""
    allowed = {"python", ".", "echo", "git", "if", "sleep", "done", "exit", "for", "fi"}
    other = {
        argv[0]
        for _, argv in commands(workflow)
        if argv[:3] not in (["python", "-m", "harness"], ["python", "-m", "pytest"])
    }
    assert other <= allowed, other - allowed
