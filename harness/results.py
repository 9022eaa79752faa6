"""Reading result files (pytest-benchmark JSON with infer-bench extras) with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path


class ResultFileError(ValueError):
    pass


def load_result(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultFileError(f"{path}: cannot read ({exc})") from None
    except ValueError as exc:
        raise ResultFileError(f"{path}: not JSON ({exc}); expected a pytest-benchmark result (--benchmark-json)") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ResultFileError(f"{path}: no 'benchmarks' list; expected a pytest-benchmark result (--benchmark-json)")
    for i, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, dict) or "fullname" not in bench or not isinstance(bench.get("stats"), dict):
            raise ResultFileError(f"{path}: benchmark #{i} lacks 'fullname' or 'stats'")
    return data


def process_samples(bench: dict) -> list[list[float]] | None:
    """Per-process per-call samples: infer-bench's extra_info, else pytest-benchmark's raw data
    (--benchmark-save-data) as one process, else None."""
    samples = (bench.get("extra_info") or {}).get("samples") or {}
    if samples.get("per_process"):
        return [list(map(float, g)) for g in samples["per_process"] if g]
    data = bench["stats"].get("data")
    return [list(map(float, data))] if data else None


def profile_of(result: dict) -> dict | None:
    return ((result.get("machine_info") or {}).get("infer_bench")) or None


def peak_of(result: dict) -> tuple[float | None, str]:
    """(practical fp32 peak GFLOP/s, how it was measured) saved with a run."""
    extra = result.get("infer_bench") or {}
    return extra.get("peak_fp32_gflops"), extra.get("peak_method", "not measured")


def control_of(result: dict) -> dict | None:
    return (result.get("infer_bench") or {}).get("control")


def by_name(result: dict) -> dict[str, dict]:
    return {b["fullname"]: b for b in result["benchmarks"]}
