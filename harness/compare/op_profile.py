"""Per-operator profiles of one cell, and the diff of two: which operator types got slower, by how
much, and their share of the slowdown. Pure: the backends' ``profile_ops`` make the measurements
(harness.backends), harness.report.op_profile renders the diff; nothing here imports a runtime or
touches a file.

**A profile** (``OpProfile``) is one runtime profiler's account of ``runs`` inferences (after a
warm-up run, whose times are dropped), in microseconds *per inference* (the total over the runs divided by
``runs``), **by operator type**, with the slowest node names of each type as detail: ORT's
``op_name`` with its node names, torch's aten op with its input shapes, TVM's operator read from the
fused function's name with that name. Types, not node names, are what two profiles are matched by:
a runtime upgrade renames fused nodes (ORT's ``/blocks/blocks.0/ffn/ffn.0/MatMul``, TVM's
``fused_matmul4_add3``), their operator types stay.

Bounded (saved with every profiled cell): the ``TOP_OP_TYPES`` slowest types, the rest folded into
one ``OTHER`` row whose detail names the folded types; ``NODES_PER_OP_TYPE`` node names per type;
every name cut to ``NAME_CHARS`` characters, control characters and runs of spaces made one space.
With ASCII names a profile's JSON stays under ``MAX_JSON_BYTES`` (tests/test_op_profile.py).

Profiler time is not timed-sample time: a profiler adds overhead per node (its events), so a
profile's total is above the cell's median. Compare profiles only with profiles, of the same
``source``; ``op_diff`` notes a different source or runtime version.

**The diff** (``op_diff``) matches the two profiles' rows by operator type (a type on one side only
is new or vanished, 0 us on the other side; one that side folded into OTHER takes OTHER's figure for
it where OTHER lists it, else counts as 0 there) and gives each its change in microseconds per
inference, its ratio and its share of the slowdown: its change over the sum of the increases of all
types (so the types that got slower share 100%, a type that got faster has a negative share: the
part of the slowdown it won back). Rows are sorted by change, the largest increase first."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

FORMAT_VERSION = 1  # of OpProfile.to_dict; from_dict refuses others
TOP_OP_TYPES = 12  # op types kept by name, the slowest; the rest are folded into OTHER
NODES_PER_OP_TYPE = 3  # node names kept per op type (the slowest)
NAME_CHARS = 40  # longest op type or node name kept; longer ones are cut and end in TRUNCATED
MAX_JSON_BYTES = 4096  # what a profile's JSON stays under with the defaults above (ASCII names)
DEFAULT_RUNS = 10  # profiled inferences per profile, after one warm-up run
OTHER = "(other op types)"
TRUNCATED = "..."
US_DIGITS = 2  # microseconds are kept to 10 ns

# words of the op names that do most of a fused kernel's work (a fused kernel is typed by its anchor)
ANCHORS = ("matmul", "mm", "linear", "dense", "conv", "attention", "pool", "norm", "softmax")
# ops that only move or reshape data: a fused kernel is typed by one of them only when it has nothing else
DATA_MOVES = frozenset(
    "reshape transpose permute_dims squeeze unsqueeze expand_dims broadcast_to strided_slice slice cast astype "
    "view clone copy flatten split concat concatenate cat select expand as_strided _to_copy contiguous "
    "layout_transform".split()
)
_BLANKS = re.compile(r"[\s\x00-\x1f\x7f]+")


def clean_name(name: object, chars: int = NAME_CHARS) -> str:
    """``name`` on one line (control characters and runs of spaces made one space), at most
    ``chars`` characters (a longer one is cut and ends in TRUNCATED)."""
    text = _BLANKS.sub(" ", str(name)).strip()
    return text if len(text) <= chars else text[: chars - len(TRUNCATED)] + TRUNCATED


@dataclass(frozen=True)
class NodeTime:
    """What a profiler measured of one node (or one op with one input shape) over all profiled runs:
    its operator type, its name, its total microseconds and how many times it ran."""

    op_type: str
    node: str
    us: float
    calls: int = 1


@dataclass(frozen=True)
class OpTypeTime:
    """One row of a profile: an operator type's microseconds and calls per inference, and its
    slowest nodes as (name, microseconds per inference), slowest first (for OTHER: the folded op
    types)."""

    op_type: str
    us: float
    calls: float
    nodes: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict:
        return {"op": self.op_type, "us": self.us, "calls": self.calls, "nodes": [list(n) for n in self.nodes]}


@dataclass(frozen=True)
class OpProfile:
    """A cell's per-operator profile: rows slowest first (OTHER last, where types were folded)."""

    source: str  # which profiler measured, e.g. "onnxruntime session profiler"
    runtime: str  # the runtime and its version, e.g. "onnxruntime 1.31.1"
    runs: int  # profiled inferences the times are averaged over
    rows: tuple[OpTypeTime, ...] = ()

    @property
    def total_us(self) -> float:
        return sum(r.us for r in self.rows)

    def share(self, row: OpTypeTime) -> float | None:
        """``row``'s share of this profile's total (None when the total is 0)."""
        total = self.total_us
        return row.us / total if total > 0 else None

    def by_op_type(self) -> dict[str, OpTypeTime]:
        return {r.op_type: r for r in self.rows}

    def to_dict(self) -> dict:
        return {
            "version": FORMAT_VERSION,
            "source": self.source,
            "runtime": self.runtime,
            "runs": self.runs,
            "ops": [r.to_dict() for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: object) -> OpProfile:
        """A profile from its ``to_dict`` form; anything malformed raises ValueError, one line
        saying which field and what was expected."""
        if not isinstance(data, dict):
            raise ValueError(f"op profile is a {type(data).__name__}, not an object")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"op profile format version {data.get('version')!r}; this harness reads {FORMAT_VERSION}")
        source, runtime = _text(data, "source", "op profile"), _text(data, "runtime", "op profile")
        runs = data.get("runs")
        if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
            raise ValueError(f"op profile: runs is {runs!r}, not a positive integer")
        ops = data.get("ops")
        if not isinstance(ops, list):
            raise ValueError(f"op profile: ops is {type(ops).__name__}, not a list")
        rows = []
        for i, op in enumerate(ops):
            where = f"op profile: ops[{i}]"
            if not isinstance(op, dict):
                raise ValueError(f"{where} is a {type(op).__name__}, not an object")
            nodes = op.get("nodes", [])
            if not isinstance(nodes, list):
                raise ValueError(f"{where}.nodes is {type(nodes).__name__}, not a list")
            detail = []
            for j, node in enumerate(nodes):
                if not (isinstance(node, list) and len(node) == 2 and isinstance(node[0], str)):
                    raise ValueError(f"{where}.nodes[{j}] is {_short(node)}, not [name, microseconds]")
                detail.append((node[0], _us(node[1], f"{where}.nodes[{j}]")))
            rows.append(
                OpTypeTime(
                    _text(op, "op", where),
                    _us(op.get("us"), f"{where}.us"),
                    _us(op.get("calls"), f"{where}.calls"),
                    tuple(detail),
                )
            )
        return cls(source, runtime, runs, tuple(rows))


def _short(value: object) -> str:
    return clean_name(repr(value), NAME_CHARS)


def _text(data: dict, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key} is {_short(value)}, not a string")
    return value


def _us(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} is {_short(value)}, not a finite number >= 0")
    return float(value)


def aggregate(
    times: Iterable[NodeTime],
    *,
    source: str,
    runtime: str,
    runs: int,
    top: int = TOP_OP_TYPES,
    nodes: int = NODES_PER_OP_TYPE,
    chars: int = NAME_CHARS,
) -> OpProfile:
    """The bounded profile of what a profiler measured over ``runs`` inferences: per operator type
    its time and calls per inference and its ``nodes`` slowest node names; the ``top`` slowest types
    by name and the rest in one OTHER row (the total is kept: OTHER holds what was folded)."""
    if runs < 1:
        raise ValueError(f"runs {runs} is not a positive integer")
    type_us: dict[str, float] = defaultdict(float)
    type_calls: dict[str, int] = defaultdict(int)
    node_us: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t in times:
        if not math.isfinite(t.us) or t.us < 0:
            raise ValueError(f"op {t.op_type!r} node {t.node!r}: {t.us!r} us is not a finite time >= 0")
        op_type = clean_name(t.op_type, chars) or "(unnamed)"
        type_us[op_type] += t.us
        type_calls[op_type] += t.calls
        node_us[op_type][clean_name(t.node, chars)] += t.us
    order = sorted(type_us, key=lambda k: (-type_us[k], k))
    kept, folded = order[:top], order[top:]
    if len(folded) == 1:  # one type folded takes no more room than its own row
        kept, folded = order, []
    rows = [
        OpTypeTime(
            op,
            _per_run(type_us[op], runs),
            _per_run(type_calls[op], runs),
            tuple(
                (n, _per_run(us, runs)) for n, us in sorted(node_us[op].items(), key=lambda kv: (-kv[1], kv[0]))[:nodes]
            ),
        )
        for op in kept
    ]
    if folded:
        rows.append(
            OpTypeTime(
                OTHER,
                _per_run(sum(type_us[op] for op in folded), runs),
                _per_run(sum(type_calls[op] for op in folded), runs),
                tuple((op, _per_run(type_us[op], runs)) for op in folded[:nodes]),
            )
        )
    return OpProfile(source, runtime, runs, tuple(rows))


def fused_op_type(name: str, known: Collection[str]) -> str:
    """The operator type of a fused kernel named by joining the names of the ops it fused with
    ``_`` (a compiler's prefix and copy numbers already removed: TVM's ``matmul_add_gelu``,
    inductor's ``add_native_layer_norm``): the known op names it spells, left to right, each the
    longest that fits; of those the fusion's anchor (the first with an ANCHORS word: the matmul,
    convolution, attention, pooling, normalisation or softmax that does most of the work), else the
    first that computes (not in DATA_MOVES), else the first; with none known, the name's first word."""
    tokens, ops, i = name.split("_"), [], 0
    while i < len(tokens):
        for j in range(len(tokens), i, -1):
            if "_".join(tokens[i:j]) in known:
                ops.append("_".join(tokens[i:j]))
                i = j
                break
        else:
            i += 1
    if not ops:
        return next((t for t in tokens if t), name)
    anchors = [op for op in ops if any(word in op.lower() for word in ANCHORS)]
    return (anchors or [op for op in ops if op not in DATA_MOVES] or ops)[0]


def _per_run(total: float, runs: int) -> float:
    return round(total / runs, US_DIGITS)


NEW, VANISHED = "new", "vanished"  # a type on one side only (the other side folded nothing)
FOLDED_BEFORE, FOLDED_NOW = "in other (baseline)", "in other (now)"  # inside that side's OTHER row


@dataclass(frozen=True)
class OpChange:
    """One operator type in a diff: microseconds per inference on each side, its share of the
    slowdown (None when nothing got slower), the current side's slowest nodes (the baseline's for a
    type gone now) and its ``status``: ``both``, NEW, VANISHED, or FOLDED_BEFORE / FOLDED_NOW where
    that side folded it into OTHER (its time there is OTHER's detail's figure when listed, else None
    and counted as 0: the change is then an upper bound)."""

    op_type: str
    baseline_us: float | None
    current_us: float | None
    share_of_slowdown: float | None
    nodes: tuple[tuple[str, float], ...] = ()
    status: str = "both"

    @property
    def change_us(self) -> float:
        return (self.current_us or 0.0) - (self.baseline_us or 0.0)

    @property
    def ratio(self) -> float | None:
        """current / baseline; None where a side has no time for it (or 0 us in the baseline)."""
        if self.baseline_us is None or self.current_us is None or self.baseline_us <= 0:
            return None
        return self.current_us / self.baseline_us


@dataclass(frozen=True)
class OpDiff:
    """Two profiles of one cell compared by operator type, the largest contributor to the slowdown
    first; ``notes`` say what makes the two less comparable (another profiler or runtime version, folded types)."""

    baseline: OpProfile
    current: OpProfile
    changes: tuple[OpChange, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def baseline_total_us(self) -> float:
        return self.baseline.total_us

    @property
    def current_total_us(self) -> float:
        return self.current.total_us

    @property
    def slowdown_us(self) -> float:
        """The sum of the increases: what the types that got slower added per inference."""
        return sum(c.change_us for c in self.changes if c.change_us > 0)

    def slower(self) -> list[OpChange]:
        """The types that got slower, the largest contributor first."""
        return [c for c in self.changes if c.change_us > 0]


def op_diff(baseline: OpProfile, current: OpProfile) -> OpDiff:
    """The per-operator-type diff of two profiles of one cell (see the module's docstring)."""
    before, after = baseline.by_op_type(), current.by_op_type()
    names = list(after) + [name for name in before if name not in after]
    sides = {
        name: (_time_on(before, name, FOLDED_BEFORE, NEW), _time_on(after, name, FOLDED_NOW, VANISHED))
        for name in names
    }
    deltas = {name: (now or 0.0) - (then or 0.0) for name, ((then, _), (now, _)) in sides.items()}
    slowdown = sum(d for d in deltas.values() if d > 0)
    changes = [
        OpChange(
            name,
            then,
            now,
            deltas[name] / slowdown if slowdown > 0 else None,
            (after.get(name) or before[name]).nodes,
            status_then or status_now or "both",
        )
        for name, ((then, status_then), (now, status_now)) in sides.items()
    ]
    changes.sort(key=lambda c: (-c.change_us, c.op_type))
    return OpDiff(baseline, current, tuple(changes), tuple(_notes(baseline, current)))


def _time_on(side: dict[str, OpTypeTime], name: str, folded: str, absent: str) -> tuple[float | None, str | None]:
    """(microseconds, status) of op type ``name`` on one side: its row's; else, where that side
    folded types into OTHER, OTHER's figure for it when listed (status ``folded``); else None."""
    if name in side:
        return side[name].us, None
    if OTHER in side:
        return dict(side[OTHER].nodes).get(name), folded
    return None, absent


def _notes(baseline: OpProfile, current: OpProfile) -> list[str]:
    notes = []
    if baseline.source != current.source:
        notes.append(f"profiled by {baseline.source} in the baseline, {current.source} now: op types may not match")
    if baseline.runtime != current.runtime:
        notes.append(f"runtime {baseline.runtime} in the baseline, {current.runtime} now: fused op types may differ")
    if OTHER in (baseline.by_op_type().keys() | current.by_op_type().keys()):
        notes.append(f"{OTHER} holds each side's types beyond its slowest ones, not necessarily the same types")
    return notes
