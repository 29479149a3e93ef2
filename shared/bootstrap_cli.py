"""`ucp bootstrap`: create the Storage containers, queues and Cosmos containers the app uses."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("bootstrap", help="create storage containers, queues and Cosmos containers (idempotent)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .bootstrap import bootstrap

    print(json.dumps(bootstrap(), indent=2))
    return 0
