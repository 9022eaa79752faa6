"""Shard results joined into one run (``python -m harness merge``): the N results of
``pytest --shard K/N --benchmark-json=...`` become the one run of the night that is compared,
saved and added to the history.

Refused, with one line naming the files: results of different machine profiles (timings from two
machines are not one run), a cell in two results (which one would count?), results of different
commits or of two different shard splits. A missing shard is not refused (a failed job must not
cost the night its other cells): the merged run records which shards it holds
(``infer_bench.merged``) and the command says which are missing.

What the merged run holds: every benchmark (sorted by name); the first result's machine and
commit info; the latest datetime; the drift control's samples of all shards, each marked with its
shard (drift correction then uses them all); the practical peak of the first result measuring one.
Each shard's own verdicts are dropped: they judged a part against the baseline; the merged run is
judged as a whole."""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.machine.drift import CONTROL_VERSION, control_samples
from harness.store.results import ResultFileError, control_of, profile_of, stamp


class MergeError(ResultFileError):
    pass


def _shard_of(name: str, result: dict) -> tuple[int, int] | None:
    text = (result.get("infer_bench") or {}).get("shard")
    if not text:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", str(text))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise MergeError(f"{name}: infer_bench.shard is {text!r}, not K/N")
    return int(match[1]), int(match[2])


def merge_results(results: Sequence[tuple[str, dict]]) -> tuple[dict, list[str]]:
    """(the merged run, notes) for loaded results [(file name, result)]; MergeError on a refusal."""
    if not results:
        raise MergeError("nothing to merge: name the shard results (pytest --benchmark-json files)")
    profiles = {(profile_of(r) or {}).get("profile_id"): name for name, r in results}
    if len(profiles) > 1:
        listed = ", ".join(f"{pid or 'no profile'} ({name})" for pid, name in profiles.items())
        raise MergeError(f"results of different machine profiles cannot be one run: {listed}")
    commits = {((r.get("commit_info") or {}).get("id")): name for name, r in results}
    if len(commits) > 1:
        listed = ", ".join(f"{(cid or 'none')[:12]} ({name})" for cid, name in commits.items())
        raise MergeError(f"results of different commits cannot be one run: {listed}")
    seen: dict[str, str] = {}
    for name, result in results:
        for bench in result["benchmarks"]:
            other = seen.setdefault(bench["fullname"], name)
            if other != name:
                raise MergeError(f"{bench['fullname']} is in both {other} and {name}: shards must not overlap")
    shards = {name: _shard_of(name, r) for name, r in results}
    counts = {s[1] for s in shards.values() if s}
    if len(counts) > 1:
        listed = ", ".join(f"{name}: {s[0]}/{s[1]}" for name, s in shards.items() if s)
        raise MergeError(f"results of different shard splits cannot be one run ({listed})")
    notes = []
    held = sorted(s[0] for s in shards.values() if s)
    if counts:
        (count,) = counts
        duplicates = sorted({i for i in held if held.count(i) > 1})
        if duplicates:
            raise MergeError(f"shard {duplicates[0]}/{count} is given twice")
        missing = [i for i in range(1, count + 1) if i not in held]
        if missing:
            listed = ", ".join(f"{i}/{count}" for i in missing)
            notes.append(f"shards missing: {listed}; their cells are not in this run")
    unsharded = [name for name, s in shards.items() if not s]
    if unsharded and counts:
        notes.append(f"merged with results run without --shard: {', '.join(unsharded)}")

    first = results[0][1]
    samples = []
    for name, result in results:
        for threads, values in control_samples(control_of(result)).items():
            samples += [{"threads": threads, "at": f"shard {name}", "control_s": v} for v in values]
    merged = {key: first[key] for key in ("machine_info", "commit_info", "version") if key in first}
    merged["datetime"] = max((r.get("datetime") or "" for _, r in results), default="") or None
    merged["benchmarks"] = sorted((b for _, r in results for b in r["benchmarks"]), key=lambda b: b["fullname"])
    extra: dict = {
        "control": {"version": CONTROL_VERSION, "samples": samples} if samples else None,
        "merged": {"from": [name for name, _ in results], "shards": [f"{i}/{count}" for i in held] if counts else []},
    }
    peak = next((r["infer_bench"] for _, r in results if (r.get("infer_bench") or {}).get("peak_fp32_gflops")), None)
    if peak:
        extra.update({k: v for k, v in peak.items() if k.startswith("peak_")})
    merged["infer_bench"] = extra
    return stamp(merged), notes
