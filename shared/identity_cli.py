"""`ucp resolve` (identity resolution on local files, in memory) and `ucp replay` (poison queue -> queue)."""
from __future__ import annotations

import csv
import json
import sys
from itertools import islice
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "resolve", help="resolve customer files into profiles, in memory; writes source,record_id,profile_id",
        description="Reads each INPUT with its source MAPPING (the same readers and mappings as ingestion), links "
                    "every customer record to a profile with the identity engine and the shipped match model, and "
                    "writes one CSV row per input record. No labels or other configuration needed.")
    p.add_argument("inputs", nargs="+", metavar="INPUT:MAPPING", help="a data file and its mapping file, joined by ':'")
    p.add_argument("--out", type=Path, required=True, help="CSV to write: source,record_id,profile_id")
    p.add_argument("--merge-log", type=Path, default=None, help="JSON Lines file for the merge log")
    p.add_argument("--identity-config", type=Path, default=None,
                   help="merge protection and survivorship rules (JSON, as config/identity.json; default: that file)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_resolve)

    r = sub.add_parser("replay", help="replay what failed, once the cause is fixed: poison messages or files",
                       description="--queue Q: moves messages of Q-poison back to Q (messages the resolver wrapped "
                                   "as {reason, message} are unwrapped). --failed-files: lands the files of the "
                                   "failed container again. --blob-poison: lands again each blob the blob trigger "
                                   "gave up on. Replaying is idempotent.")
    what = r.add_mutually_exclusive_group(required=True)
    what.add_argument("--queue", help="queue name, e.g. resolve (reads resolve-poison)")
    what.add_argument("--failed-files", nargs="?", const="", metavar="PREFIX",
                      help="files of the failed container (optionally under PREFIX, e.g. pos/customers/)")
    what.add_argument("--blob-poison", action="store_true", help="blobs named in webjobs-blobtrigger-poison")
    r.add_argument("--dry-run", action="store_true", help="list what would be replayed, move nothing")
    r.set_defaults(func=run_replay)


def _pairs(specs: list[str]) -> list[tuple[Path, Path]]:
    pairs = []
    for spec in specs:
        # Paths may hold ":" themselves (C:\\data.csv, a:b/map.json): the split where both sides are files.
        splits = [(Path(spec[:i]), Path(spec[i + 1:]))
                  for i, ch in enumerate(spec) if ch == ":" and 0 < i < len(spec) - 1]
        if not splits:
            raise ValueError(f"expected INPUT:MAPPING, got {spec!r}")
        found = next(((data, mapping) for data, mapping in splits if data.is_file() and mapping.is_file()), None)
        if found is None:
            data, mapping = splits[-1]
            raise FileNotFoundError(f"no such file: {data if not data.is_file() else mapping}")
        pairs.append(found)
    return pairs


def _mapped_rows(pairs: list[tuple[Path, Path]], settings):
    """(source, mapped row) for every row of every input file, read with its mapping."""
    from .ingest import load_mapping_file
    from .ingest.pipeline import iter_mapped

    for data, mapping_path in pairs:
        mapping = load_mapping_file(mapping_path)
        if mapping.entity != "customers":
            raise ValueError(f"{mapping_path}: ucp resolve needs a customers mapping, not {mapping.entity}")
        with data.open("rb") as stream:
            for mapped in iter_mapped(stream, data.name, mapping, settings=settings):
                yield mapping.source, mapped


def run_resolve(args) -> int:
    from tqdm import tqdm

    from dataclasses import replace

    from .identity import Resolver
    from .identity.engine import NORMALIZE_AHEAD
    from .identity.config import load_identity_config
    from .identity.docs import Ctx, follow_aliases
    from .settings import get_settings
    from .store import MemoryStore, with_frozen_heap

    pairs = _pairs(args.inputs)
    for out in (args.out, args.merge_log):  # checked before the work, not after it
        if out is not None and out.is_dir():
            raise ValueError(f"{out} is a folder; give a file name")
    settings = get_settings()
    if args.identity_config:
        settings = settings.model_copy(update={"identity_config": str(args.identity_config)})
    config = replace(load_identity_config(settings.identity_config or None), single_writer=True)  # one thread writes
    store = MemoryStore(copy_documents=False)  # the engine treats documents as values: no deep copies needed
    resolver = Resolver(store, settings=settings, config=config)
    rows: list[tuple[str, str, str | None]] = []  # source, record key, record key to look up (None: not resolved)
    counts: dict[str, int] = {}
    flags: dict[str, int] = {}  # of the resolved rows, as ingestion reports them (dropped_invalid:birth_date, ...)
    progress = tqdm(unit=" records", disable=args.no_progress, file=sys.stderr)
    mapped_rows = with_frozen_heap(_mapped_rows(pairs, settings))
    while chunk := list(islice(mapped_rows, NORMALIZE_AHEAD)):  # resolve_many normalizes a chunk ahead
        results = resolver.resolve_many(mapped.item for _, mapped in chunk if mapped.item is not None)
        for source, mapped in chunk:
            record = mapped.item
            if record is None:
                rows.append((source, mapped.record_key or "", None))
                counts["invalid"] = counts.get("invalid", 0) + 1
            else:
                result = next(results)
                counts[result.action] = counts.get(result.action, 0) + 1
                for flag in mapped.flags:
                    flags[flag] = flags.get(flag, 0) + 1
                rows.append((record.source, record.record_key, record.key if result.profile_id else None))
        progress.update(len(chunk))
    progress.close()
    ctx = Ctx(store, settings)
    final: dict[str, str] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "record_id", "profile_id"])
        for source, record_id, key in rows:
            writer.writerow([source, record_id, _final_profile(ctx, key, final, follow_aliases) if key else ""])
    if args.merge_log:
        with args.merge_log.open("w", encoding="utf-8") as f:
            for doc in store.container("merges").query_items(order_by="at"):
                f.write(json.dumps({k: v for k, v in doc.items() if not k.startswith("_")}, default=str) + "\n")
    profiles = len(set(final.values()))
    print(json.dumps({"records": len(rows), "profiles": profiles, "actions": counts, "flags": flags}), file=sys.stderr)
    return 0


def _final_profile(ctx, key: str, cache: dict[str, str], follow_aliases) -> str:
    """The record's profile after every merge of the run (earlier results may name since-absorbed profiles)."""
    if key not in cache:
        doc = ctx.records.read_item_or_none(key, key)
        profile, _ = follow_aliases(ctx, doc["profile_id"]) if doc else (None, [])
        cache[key] = profile["id"] if profile else ""
    return cache[key]


def run_replay(args) -> int:
    from .identity.worker import replay_poison
    from .ingest.replay import replay_blob_trigger_poison, replay_failed_files
    from .settings import get_settings

    settings = get_settings()
    if args.queue:
        reports, what = replay_poison(args.queue, settings, dry_run=args.dry_run), f"message(s) from {args.queue}-poison"
    elif args.blob_poison:
        reports, what = replay_blob_trigger_poison(settings, dry_run=args.dry_run), "blob(s) the blob trigger gave up on"
    else:
        reports, what = replay_failed_files(settings, prefix=args.failed_files, dry_run=args.dry_run), "failed file(s)"
    moved = failed = 0
    for report in reports:
        moved += bool(report.get("replayed") or args.dry_run) and "error" not in report
        failed += "error" in report
        print(json.dumps(report))
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {moved} {what}" + (f"; {failed} could not be replayed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0
