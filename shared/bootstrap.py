"""Create everything ucp needs in Storage and Cosmos DB, idempotently (`ucp bootstrap`)."""
from __future__ import annotations

from .settings import Settings, get_settings
from .storage import bootstrap_storage
from .store.cosmos import CosmosStore


def bootstrap(settings: Settings | None = None) -> dict[str, list[str]]:
    s = settings or get_settings()
    made = bootstrap_storage(s)
    store = CosmosStore(s.cosmos_endpoint, s.cosmos_key, s.cosmos_database, prefix=s.container_prefix)
    made["cosmos_containers"] = store.bootstrap()
    return made
