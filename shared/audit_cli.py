"""`ucp audit`: check the invariants of the configured store (shared/audit.py) and print them as JSON."""
from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "audit", help="check the store's invariants (accounting, records, identifiers, aliases, merges); JSON out",
        description="Reads the configured Cosmos DB (COSMOS_ENDPOINT, UCP_CONTAINER_PREFIX, ...) and checks that "
                    "every ingestion report accounts for its rows, every source record is in exactly one profile, "
                    "the identifier index and the profiles agree, every alias leads to a live profile and no "
                    "merge is left half done. Exit code 1 when a check fails. Output holds ids, never PII.")
    p.add_argument("--generated", type=Path, default=None,
                   help="a `ucp generate` output folder: also check rows per blob against its manifest and "
                        "records against its truth (profiles per true person, lost records)")
    p.add_argument("--uploaded-only", action="store_true",
                   help="with --generated: check only the blobs that have an ingestion report")
    p.set_defaults(func=run_audit)


def run_audit(args) -> int:
    from .audit import audit_store, manifest_rows, read_truth, resolver_quarantined_keys, truth_clusters
    from .settings import get_settings
    from .store import open_store

    store = open_store(get_settings())
    expected = None
    if args.generated is not None:
        expected = manifest_rows(args.generated)
        if args.uploaded_only:
            seen = {r.get("blob") for r in store.container("ledger").query_items(("doc_type", "=", "ingestion"))}
            expected = {k: v for k, v in expected.items() if k in seen}
    findings = audit_store(store, expected_rows=expected)
    out = findings.as_dict()
    ok = findings.ok
    if args.generated is not None:
        excused = resolver_quarantined_keys(get_settings())
        clusters = truth_clusters(store, read_truth(args.generated), excused=excused)
        out["truth"] = {**clusters["figures"], "lost_samples": clusters["lost"][:10],
                        "resolver_quarantined": len(excused)}
        ok = ok and not clusters["lost"] and not clusters["unknown"]
    out["ok"] = ok
    print(json.dumps(out, indent=2, default=str))
    return 0 if ok else 1
