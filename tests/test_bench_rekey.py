"""bench.rekey on a small generated set: each direction re-keys records, leaves a store the audit passes and a
second run finds current; turning provider rules on ends where resolving with them on from the start does."""
from __future__ import annotations

from bench.rekey import measure
from shared.generate import GeneratorConfig, generate


def test_rekey_bench_figures(tmp_path):
    generate(tmp_path, GeneratorConfig(customers=300, seed=3), progress=False)
    figures = measure(tmp_path)
    for direction in ("rules_turned_on", "rules_turned_off"):
        run = figures[direction]
        assert run["counts"]["rekeyed"] > 0 and run["second_run_rekeyed"] == 0
        assert run["audit_violations"] == {}
        assert run["requests_per_record"] >= 1  # at least the read of each record's stored content
    turned_on = figures["rules_turned_on"]
    assert turned_on["after"] == turned_on["resolved_so_from_the_start"]
    assert turned_on["after"]["pairwise_recall"] >= turned_on["before"]["pairwise_recall"]
