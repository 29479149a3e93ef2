"""Identity resolution: streaming, deterministic + probabilistic linking with stable profile ids.

Public API (the ingestion, HTTP API and churn code call these):
    resolve_records(store, records, *, settings=None, model=None) -> list[ResolveResult]
    remove_record(store, source, record_key, *, settings=None) -> str | None
    split_record(store, profile_id, record_key, *, settings=None) -> str
    finish_unfinished_splits(store, *, settings=None, idle_seconds=None, limit=100) -> list[str]
    finish_unfinished_merges(store, *, settings=None, idle_seconds=None, limit=100) -> list[str]
    rekey(store, *, settings=None) -> dict[str, int]
    repair_index(store, *, settings=None, idle_seconds=None, since=None, deadline=None) -> dict[str, int]
    repair_window(store, *, settings=None, budget_seconds=480) -> dict[str, int] | None  # the hourly timer's run
    mended_anything(counts) -> bool                  # did a repair's counts mend something
    get_profile(store, profile_id) -> dict
    find_profile_id(store, id_type, raw_value, *, region=None, settings=None) -> str | None
    is_blocked_identifier(iid, config_or_settings=None) -> bool
    is_placeholder_identifier(id_type, raw_value, *, region=None) -> bool
    list_merges(store, profile_id) -> list[dict]
"""
from .docs import ResolverConfig
from .engine import ACTIONS, Resolver, ResolveResult, resolve_records
from .lookup import (find_profile_id, get_profile, is_blocked_identifier, is_placeholder_identifier, list_merges,
                     normalized_identifier)
from .maintenance import (finish_unfinished_merges, finish_unfinished_splits, index_holders, remove_record,
                          split_record)
from .protection import ProtectionPolicy
from .rekey import rekey
from .repair import mended_anything, repair_index, repair_window
from .survivorship import SurvivorshipPolicy

__all__ = [
    "ACTIONS", "Resolver", "ResolveResult", "ResolverConfig", "ProtectionPolicy", "SurvivorshipPolicy",
    "resolve_records", "remove_record", "split_record", "finish_unfinished_splits", "get_profile", "find_profile_id",
    "list_merges", "normalized_identifier", "is_blocked_identifier", "is_placeholder_identifier", "index_holders",
    "rekey", "finish_unfinished_merges", "repair_index", "repair_window", "mended_anything",
]
