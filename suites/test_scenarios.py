"""Scenarios: latency (one stream), throughput (concurrent streams over batches, samples/s) and a
server (Poisson arrivals; the highest rate whose p99 stays under 5x the unloaded median), after
MLPerf LoadGen's SingleStream, Offline and Server (harness.plan.scenario).

The encoder the ORT transformer optimizer is made for, laid out as Hugging Face's BERT so that its
attention is fused too (bert_base_hf: 12 layers, hidden 768, 12 heads, seq 128, separate Q/K/V and
an attention mask), on eager torch, plain ORT and ORT with its fusions (``ort-opt``), at batch 1
and 8, 2 threads. bert_tiny (one combined QKV projection, no mask: ort-opt fuses no attention in
it) keeps the smoke cells of the committed baselines, and beside bert_tiny_hf shows what the
attention fusion is worth. Throughput at 2 threads on a 2-CPU machine is one stream (streams x
threads stay within the CPUs); 1 thread gives two streams. Verdicts judge the per-process mean for
throughput (what samples/s sees) and p99 for a server (harness.compare.percentiles), unless told otherwise.

    pytest suites/test_scenarios.py -m smoke          # bert_tiny on ORT: a throughput and a server cell
    pytest suites/test_scenarios.py --models bert_base_hf,bert_base --threads 2 --scenario latency,throughput \
        --processes 1                                 # the bert_base table of the README

A server cell of a slow model takes minutes per worker process: its peak search tries about ten
rates, each for at least ~20 queries (at most 10 s), then runs the found rate for 500 queries or
30 s (harness.run.load).
"""

from harness import Matrix

MATRIX = Matrix(
    models=["bert_base_hf", "bert_tiny_hf", "bert_tiny"],
    backends=["torch", "ort", "ort-opt"],
    threads=["2", "1"],
    batch=[1, 8],
    scenario=["latency", "throughput", "server"],
    smoke={
        "models": ["bert_tiny"],
        "backends": ["ort"],
        "threads": ["1"],
        "batch": [8],
        "scenario": ["throughput", "server"],
    },
)


def test_scenario(cell, measure_cell):
    result = measure_cell(cell)
    assert result.parity["passed"]
