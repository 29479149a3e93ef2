"""MemoryStore keys items of containers partitioned by id by their id alone, and stamps a value store's documents
in one construction: neither may change what a caller sees (the contract of shared/store/base.py)."""
from __future__ import annotations

import pytest

from shared.store import ItemNotFoundError, MemoryStore


@pytest.mark.parametrize("copy_documents", [True, False])
def test_an_id_partitioned_item_is_not_found_under_another_partition_key(copy_documents):
    profiles = MemoryStore(copy_documents=copy_documents).container("profiles")
    profiles.create_item({"id": "p", "n": 1})
    assert profiles.read_item_or_none("p", "q") is None and profiles.read_items([("p", "q"), ("p", "p")])[0] is None
    profiles.delete_item("p", "q")
    with pytest.raises(ItemNotFoundError):
        profiles.execute_batch("q", [("delete", "p")])
    assert profiles.read_item("p", "p")["n"] == 1
    assert [d["id"] for d in profiles.query_items(partition_key="p")] == ["p"]
    assert list(profiles.query_items(partition_key="q")) == []
    profiles.delete_item("p", "p")
    assert profiles.read_items([("p", "p")]) == [None]


@pytest.mark.parametrize("copy_documents", [True, False])
def test_stored_documents_keep_their_keys_in_order_with_the_system_ones_last(copy_documents):
    profiles = MemoryStore(copy_documents=copy_documents).container("profiles")
    created = profiles.create_item({"id": "p", "a": 1, "_rid": "r"})
    assert list(created) == ["id", "a", "_etag", "_ts"]
    changed = profiles.replace_item({**created, "a": 2}, etag=created["_etag"])
    assert list(changed) == ["id", "a", "_etag", "_ts"] and changed["_etag"] != created["_etag"]
    grown = profiles.replace_item({**changed, "b": 3}, etag=changed["_etag"])
    assert list(grown) == ["id", "a", "b", "_etag", "_ts"] and grown["a"] == 2
    moved = profiles.upsert_item({"_ts": 1, **grown, "_self": "s"})
    assert list(moved) == ["id", "a", "b", "_etag", "_ts"] and moved["_ts"] != 1
    assert profiles.read_item("p", "p") == moved
