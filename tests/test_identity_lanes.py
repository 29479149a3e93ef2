"""Resolving a message's records in lanes: concurrent, with the outcome of resolving them in order."""
from __future__ import annotations

import random

import pytest

from bench.identity import load_customer_records
from shared.generate import GeneratorConfig, generate
from shared.identity import resolve_records
from shared.identity.docs import Ctx, follow_aliases
from shared.identity.lanes import lanes, resolve_in_lanes
from shared.models import CustomerRecord
from shared.settings import Settings
from shared.store import MemoryStore

SETTINGS = Settings()


def rec(key: str, **fields) -> CustomerRecord:
    return CustomerRecord(source="pos", record_key=key, **fields)


def test_records_sharing_a_key_even_through_others_share_a_lane_in_order():
    records = [
        rec("1", email="ann@lee.org", given_name="Ann"),
        rec("2", given_name="Bob", family_name="Stone", postcode="LS1 4AB"),
        rec("3", email="ann@lee.org", phone="+447911123456"),  # meets 1 by email
        rec("4", phone="+44 7911 123456", given_name="Annie"),  # meets 3 by phone, so 1 too
        rec("5", given_name="Robert", family_name="Stone", postcode="LS1 4AB"),  # meets 2 by a blocking key
        rec("6", email="carl@ex.org"),
        rec("7", city="Leeds"),  # no usable field: quarantined, meets nothing
        rec("1", email="ann@lee.org", given_name="Ann", city="Leeds"),  # the same source record again
    ]
    assert sorted(lanes(records)) == [[0, 2, 3, 7], [1, 4], [5], [6]]


@pytest.fixture(scope="module")
def generated_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("lanes")
    generate(out, GeneratorConfig(customers=80, seed=5), progress=False)
    records = load_customer_records(out)
    random.Random(3).shuffle(records)
    return records[:150]


def _final_profiles(store, records) -> dict[str, str]:
    ctx = Ctx(store)
    return {r.key: follow_aliases(ctx, ctx.records.read_item(r.key, r.key)["profile_id"])[0]["id"]
            for r in records if ctx.records.read_item_or_none(r.key, r.key)}


def test_lanes_end_as_resolving_in_order_would(store, generated_records):
    groups = lanes(generated_records)
    assert 1 < len(groups) < len(generated_records)  # the data holds people with several records
    in_order = MemoryStore()
    expected = resolve_records(in_order, generated_records, settings=SETTINGS)
    results = resolve_in_lanes(store, generated_records, settings=SETTINGS, workers=8)
    assert [r.record_key for r in results] == [r.key for r in generated_records]
    assert [(r.action, r.profile_id) for r in results] == [(r.action, r.profile_id) for r in expected]
    assert _final_profiles(store, generated_records) == _final_profiles(in_order, generated_records)


def test_a_failing_record_fails_the_message_after_the_other_lanes_finish():
    store = MemoryStore()
    records = [rec(str(i), email=f"p{i}@ex.org", given_name=f"Name{i}") for i in range(12)]

    class FailingStore:
        def container(self, name):
            inner = store.container(name)
            if name != "profiles":
                return inner

            class Profiles:
                def __getattr__(self, attr):
                    value = getattr(inner, attr)
                    if attr != "create_item":
                        return value

                    def create(body):
                        if body["records"][0]["key"] == records[5].key:
                            raise RuntimeError("store unavailable")
                        return value(body)

                    return create

            return Profiles()

    with pytest.raises(RuntimeError, match="store unavailable"):
        resolve_in_lanes(FailingStore(), records, settings=SETTINGS, workers=4)
    assert store.container("profiles").count_items() == len(records) - 1  # every other lane finished


def test_each_record_is_normalized_once_for_lanes_and_resolving(monkeypatch, generated_records):
    import shared.identity.engine as engine
    import shared.identity.lanes as lanes_module

    calls = []
    normalize = engine.normalize_record
    counting = lambda record, **options: calls.append(record.key) or normalize(record, **options)  # noqa: E731
    for module in (engine, lanes_module):  # wherever a module would call it from
        monkeypatch.setattr(module, "normalize_record", counting, raising=False)
    resolve_in_lanes(MemoryStore(), generated_records[:40], settings=SETTINGS, workers=4)
    assert sorted(calls) == sorted(r.key for r in generated_records[:40])
