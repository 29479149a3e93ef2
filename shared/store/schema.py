"""The Cosmos DB containers ucp uses and their partition keys (one place; bootstrap and both stores read it).

Why these keys: lookups are point reads by id wherever possible (1 RU per KB). Activity is partitioned by
its owner key (a source customer key or a profile id) so it can be stored before the customer is resolved
and read per owner without cross-partition queries.
"""
from __future__ import annotations

CONTAINERS: dict[str, str] = {
    "profiles": "/id",  # unified profiles, and alias stubs of absorbed profiles (merged_into)
    "identifiers": "/id",  # "<type>:<normalized value>" -> profile id; create_item is the uniqueness claim
    "records": "/id",  # source records "<source>|<record key>", each with the profile it belongs to
    "blocking": "/id",  # probabilistic-matching blocking keys -> candidate profile ids
    "merges": "/profile_id",  # merge log, per surviving profile
    "review": "/id",  # record/profile pairs between the review and match thresholds
    "activity": "/owner",  # transactions, events, reviews keyed by their owner
    "activity_owners": "/id",  # activity id -> the owner holding it: a moved order is moved, not copied
    "ledger": "/id",  # ingestion ledger (blob name + etag) and ingestion reports
    "segments": "/id",  # segment, journey and report definitions
    "state": "/id",  # small singletons: job locks, checkpoints, counters
}
