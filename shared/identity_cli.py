"""`ucp resolve` (identity resolution on local files, in memory), `ucp match-model` (the match model fitted to
those files) and `ucp replay` (poison queue -> queue, failed files, quarantined records)."""
from __future__ import annotations

import csv
import json
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any


def register(sub) -> None:
    p = sub.add_parser(
        "resolve", help="resolve customer files into profiles, in memory; writes source,record_id,profile_id",
        description="Reads each INPUT with its source MAPPING (the same readers and mappings as ingestion), links "
                    "every customer record to a profile with the identity engine and the match model (the shipped "
                    "one, or --model), and writes one CSV row per input record. No labels or other configuration "
                    "needed.")
    p.add_argument("inputs", nargs="+", metavar="INPUT:MAPPING", help="a data file and its mapping file, joined by ':'")
    p.add_argument("--out", type=Path, required=True, help="CSV to write: source,record_id,profile_id")
    p.add_argument("--merge-log", type=Path, default=None, help="JSON Lines file for the merge log")
    p.add_argument("--reviews", type=Path, default=None,
                   help="JSON Lines file for the review list: the records the resolver would not join on its own "
                        "(a score between the thresholds, or merge protection in the way), with the candidate "
                        "profile, the score and each field's contribution; profile ids as --out names them")
    p.add_argument("--rejects", type=Path, default=None,
                   help="CSV of the records left without a profile and why: file,row,source,record_id,action,reason,"
                        "message (action invalid: the mapping refused the row, as ingestion would quarantine it; "
                        "quarantined: nothing to resolve it on). Reasons are counted in the summary either way")
    p.add_argument("--identity-config", type=Path, default=None,
                   help="merge protection and survivorship rules (JSON, as config/identity.json; default: that file)")
    p.add_argument("--model", type=Path, default=None,
                   help="match model (JSON, as ucp match-model writes; default: UCP_MATCH_MODEL, else the shipped one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_resolve)

    m = sub.add_parser(
        "match-model", help="fit the match model to your customer files, without labels; writes MODEL.json",
        description="Reads each INPUT with its source MAPPING as ucp resolve does and fits the match model's weights "
                    "to those records without labels: u from random pairs, m from pairs sharing an email or loyalty "
                    "id (or by EM), the related class and class priors by EM. Use it with ucp resolve --model, or "
                    "deploy it with UCP_MATCH_MODEL. Thresholds, merge protection and the given-name rule still "
                    "decide as before. Prints a JSON summary.")
    m.add_argument("inputs", nargs="+", metavar="INPUT:MAPPING", help="a data file and its mapping file, joined by ':'")
    m.add_argument("--out", type=Path, required=True, help="model file to write (JSON)")
    m.add_argument("--population", type=int, default=None, metavar="N",
                   help="the store size the priors are set for: how many customer records the store the model "
                        "resolves against will hold (a pair's prior odds of being one person fall as it grows); "
                        "default: the number of usable records read")
    m.add_argument("--seed", type=int, default=1, help="seed of the random pairs u is measured on (default 1)")
    m.add_argument("--force", action="store_true",
                   help="fit even to fewer usable records than a reliable fit needs (1,000)")
    m.add_argument("--identity-config", type=Path, default=None,
                   help="the identity config whose blocked values are left out of the records, as the resolver "
                        "leaves them out (JSON, as config/identity.json; default: UCP_IDENTITY_CONFIG, else that "
                        "file)")
    m.set_defaults(func=run_match_model)

    r = sub.add_parser("replay", help="replay what failed, once the cause is fixed: poison messages, files or "
                                      "quarantined records",
                       description="--queue Q: moves messages of Q-poison back to Q (messages the resolver wrapped "
                                   "as {reason, message} are unwrapped). --failed-files: lands the files of the "
                                   "failed container again. --blob-poison: lands again each blob the blob trigger "
                                   "gave up on. --quarantined-records: puts the customer records the resolver "
                                   "quarantined (resolve/ of the quarantine container, e.g. no usable field) back "
                                   "on the resolve queue, then deletes their blob; a line that is not a valid "
                                   "record stays in its blob and is reported; records that still cannot be "
                                   "resolved are quarantined again. Prints one JSON report per message, file or "
                                   "blob (no record values). Replaying is idempotent.")
    what = r.add_mutually_exclusive_group(required=True)
    what.add_argument("--queue", help="queue name, e.g. resolve (reads resolve-poison)")
    what.add_argument("--failed-files", nargs="?", const="", metavar="PREFIX",
                      help="files of the failed container (optionally under PREFIX, e.g. pos/customers/)")
    what.add_argument("--blob-poison", action="store_true", help="blobs named in webjobs-blobtrigger-poison")
    what.add_argument("--quarantined-records", nargs="?", const="", metavar="PREFIX",
                      help="records the resolver quarantined (optionally under PREFIX, e.g. resolve/2026/11/)")
    r.add_argument("--dry-run", action="store_true", help="list what would be replayed, move nothing")
    r.set_defaults(func=run_replay)

    h = sub.add_parser("index-holders", help="once, after upgrading a store written before identifiers remembered "
                                             "their holders: note them (JSON counts out)",
                       description="Reads every profile of the configured Cosmos DB and notes, on each identifier "
                                   "one of its records gives but another profile holds (a household's phone), that "
                                   "it gives it too, so the value passes to it when the holder lets it go; a value "
                                   "nobody holds (released by a removal or an erase before) is claimed for it. "
                                   "Idempotent, safe beside running workers; prints counts, no values.")
    h.set_defaults(func=run_index_holders)

    x = sub.add_parser("repair-index", help="make the identifier, blocking and records documents agree with the "
                                            "profiles again, when `ucp audit` reports findings of those (JSON counts "
                                            "out)",
                       description="Finishes the merges and splits left idle (as the timers do), then reads every "
                                   "profile, identifier, blocking and records document of the configured Cosmos DB "
                                   "and mends what disagrees with the profiles: a key or identifier naming a profile "
                                   "that no longer gives it is released, one a profile gives that leads nowhere is "
                                   "indexed again, one naming a profile gone goes to the profile listing it or is let "
                                   "go, a records doc idle for UCP_MERGE_IDLE_SECONDS follows its record, an "
                                   "identifier's holders keep only live profiles giving it. A profile "
                                   "in a merge or split still running is left to it. Idempotent, safe beside running "
                                   "workers; prints what it found, no values. The hourly repair_recent_index timer "
                                   "does the same over what the last UCP_REPAIR_WINDOW_SECONDS wrote.")
    x.add_argument("--since-seconds", type=int, metavar="N",
                   help="only the documents written in the last N seconds, and what they name (as the hourly "
                        "repair_recent_index timer does): reads follow the writes, not the store's size")
    x.set_defaults(func=run_repair_index)

    k = sub.add_parser("rekey", help="after a change of normalization (email provider rules, blocked values): resolve "
                                     "again the records resolved under the old one (JSON counts out)",
                       description="Reads every profile of the configured Cosmos DB and the stored content of each of "
                                   "its records, and resolves again each record whose profile entry was made under "
                                   "another normalization (normalization.email_provider_rules or "
                                   "protection.blocked_values of the identity configuration changed since): it "
                                   "claims the new forms of its identifiers, releases the old ones, and joins the "
                                   "profiles its new identifiers lead to, under merge protection. It never splits a "
                                   "profile. Run it once the workers run the new configuration; idempotent, safe "
                                   "beside them, and a run cut off is finished by the next. Prints counts, no values.")
    k.set_defaults(func=run_rekey)


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


def _customers_mappings(pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Any]]:
    """(input file, its mapping) for every pair, every mapping loaded and checked before any file is read."""
    from .ingest import load_mapping_file

    loaded = []
    for data, mapping_path in pairs:
        mapping = load_mapping_file(mapping_path)
        if mapping.entity != "customers":
            raise ValueError(f"{mapping_path}: a customers mapping is needed, not {mapping.entity}")
        loaded.append((data, mapping))
    return loaded


def _mapped_rows(inputs: list[tuple[Path, Any]], settings):
    """(source, file name, mapped row) for every row of every input file, read with its mapping; a file that
    cannot be read is named in the error (with several inputs, which one failed is the first question)."""
    from .ingest.pipeline import iter_mapped
    from .ingest.readers import FileError

    for data, mapping in inputs:
        try:
            with data.open("rb") as stream:
                for mapped in iter_mapped(stream, data.name, mapping, settings=settings):
                    yield mapping.source, data.name, mapped
        except (ValueError, OSError, FileError) as err:
            raise ValueError(f"{data} (source {mapping.source}): {err}") from err


class _RejectsFile:
    """`ucp resolve --rejects`: one CSV row per record left without a profile, written as it happens; a no-op
    without a path."""

    HEADER = ("file", "row", "source", "record_id", "action", "reason", "message")

    def __init__(self, path: Path | None):
        self._path, self._file, self._writer = path, None, None

    def __enter__(self) -> "_RejectsFile":
        if self._path is not None:
            self._file = self._path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.HEADER)
        return self

    def write(self, file_name: str, mapped, source: str, record_id: str, action: str, codes: list[str],
              message: str) -> None:
        if self._writer is not None:  # record ids as written in --out, so the two files join
            self._writer.writerow([file_name, mapped.row, source, record_id, action, ";".join(codes), message])

    def __exit__(self, exc_type, *exc) -> None:
        if self._file is not None:
            self._file.close()
            if exc_type is not None:  # a run that failed has no list of rejects: a partial one would read as one
                self._path.unlink(missing_ok=True)


def run_resolve(args) -> int:
    from tqdm import tqdm

    from dataclasses import replace

    from .identity import Resolver
    from .identity.engine import NORMALIZE_AHEAD, quarantine_code
    from .identity.config import load_identity_config
    from .identity.docs import Ctx, follow_aliases
    from .settings import get_settings
    from .store import MemoryStore, with_frozen_heap

    inputs = _customers_mappings(_pairs(args.inputs))
    outputs = [out for out in (args.out, args.merge_log, args.reviews, args.rejects) if out is not None]
    for out in outputs:  # checked before the work, not after it
        if out.is_dir():
            raise ValueError(f"{out} is a folder; give a file name")
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
    settings = get_settings()
    if args.identity_config:
        settings = settings.model_copy(update={"identity_config": str(args.identity_config)})
    if args.model:  # loaded by the Resolver below, before any file is read
        settings = settings.model_copy(update={"match_model": str(args.model)})
    config = replace(load_identity_config(settings.identity_config or None), single_writer=True)  # one thread writes
    store = MemoryStore(copy_documents=False)  # the engine treats documents as values: no deep copies needed
    resolver = Resolver(store, settings=settings, config=config)
    rows: list[tuple[str, str, str | None]] = []  # source, record key, record key to look up (None: not resolved)
    counts: dict[str, int] = {}
    flags: dict[str, int] = {}  # of the resolved rows, as ingestion reports them (dropped_invalid:birth_date, ...)
    reasons: dict[str, int] = {}  # why rows have no profile: the mapping's reasons, the resolver's quarantine codes
    progress = tqdm(unit=" records", disable=args.no_progress, file=sys.stderr)
    mapped_rows = with_frozen_heap(_mapped_rows(inputs, settings))
    with _RejectsFile(args.rejects) as rejects:
        while chunk := list(islice(mapped_rows, NORMALIZE_AHEAD)):  # resolve_many normalizes a chunk ahead
            results = resolver.resolve_many(mapped.item for _, _, mapped in chunk if mapped.item is not None)
            for source, file_name, mapped in chunk:
                record = mapped.item
                if record is None:  # the mapping refused the row
                    rows.append((source, mapped.record_key or "", None))
                    counts["invalid"] = counts.get("invalid", 0) + 1
                    action, codes = "invalid", [reason.key for reason in mapped.reasons]
                    message = "; ".join(reason.message for reason in mapped.reasons)
                else:
                    result = next(results)
                    counts[result.action] = counts.get(result.action, 0) + 1
                    for flag in mapped.flags:
                        flags[flag] = flags.get(flag, 0) + 1
                    rows.append((record.source, record.record_key, record.key if result.profile_id else None))
                    if result.action != "quarantined":
                        continue
                    action, codes, message = "quarantined", [quarantine_code(result.reason)], result.reason
                rejects.write(file_name, mapped, source, rows[-1][1], action, codes, message)
                for code in codes:
                    reasons[code] = reasons.get(code, 0) + 1
            progress.update(len(chunk))
    progress.close()
    ctx = Ctx(store, settings)
    final: dict[str, str] = {}
    with args.out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "record_id", "profile_id"])
        for source, record_id, key in rows:
            writer.writerow([source, record_id, _final_profile(ctx, key, final, follow_aliases) if key else ""])
    if args.merge_log:
        _write_jsonl(args.merge_log, store.container("merges").query_items(order_by="at"))
    if args.reviews:  # the questions still open (a later merge answers some), profiles named as --out names them
        open_list = store.container("review").query_items(("status", "=", "open"), order_by="created_at")
        _write_jsonl(args.reviews, ({**doc, **{field: _final_id(ctx, doc[field], follow_aliases)
                                               for field in ("profile_id", "candidate_profile_id")}}
                                    for doc in open_list))
    profiles = len(set(final.values()))
    # Open at the end: fewer than the "review" actions when later merges answered some (--reviews lists these).
    open_reviews = store.container("review").count_items(("status", "=", "open"))
    print(json.dumps({"records": len(rows), "profiles": profiles, "actions": counts, "reasons": reasons,
                      "flags": flags, "open_reviews": open_reviews}), file=sys.stderr)
    return 0


def run_match_model(args) -> int:
    import time

    from model_training.match_model import fit_match_model
    from .identity.config import load_identity_config
    from .settings import get_settings

    started = time.perf_counter()
    pairs = _pairs(args.inputs)
    if args.out.is_dir():  # checked before the work, not after it
        raise ValueError(f"{args.out} is a folder; give a file name")
    if args.population is not None and args.population < 2:
        raise ValueError(f"--population {args.population}: the store size the priors are set for, at least 2")
    settings = get_settings()
    records, inputs = [], []
    for (data, mapping_path), loaded in zip(pairs, _customers_mappings(pairs)):
        read = invalid = 0
        for _, _, mapped in _mapped_rows([loaded], settings):
            if mapped.item is None:
                invalid += 1
            else:
                records.append(mapped.item)
                read += 1
        # Provenance in the model file: names and counts only, never a record's values.
        inputs.append({"file": data.name, "mapping": mapping_path.name, "records": read, "invalid": invalid})
    config = load_identity_config(args.identity_config or settings.identity_config or None)
    model = fit_match_model(records, seed=args.seed, population=args.population, inputs=inputs, force=args.force,
                            blocked=config.protection.blocked_values)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    meta = model.metadata
    print(json.dumps({
        "out": str(args.out), "version": model.version, "records": meta["records"],
        "unusable_records": meta["unusable_records"], "duplicate_keys": meta["duplicate_keys"],
        "population": model.population, "candidate_pairs": meta["candidate_pairs"], "m_source": meta["m_source"],
        "inputs": inputs, "training_seconds": meta["seconds"], "seconds": round(time.perf_counter() - started, 2)}))
    return 0


def _write_jsonl(path: Path, docs) -> None:
    """Documents as JSON Lines, without their system properties."""
    with path.open("w", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({k: v for k, v in doc.items() if not k.startswith("_")}, default=str) + "\n")


def _final_id(ctx, profile_id: str, follow_aliases) -> str:
    """The live profile an id leads to after the run's merges (the id itself if it leads nowhere)."""
    profile, _ = follow_aliases(ctx, profile_id)
    return profile["id"] if profile else profile_id


def _final_profile(ctx, key: str, cache: dict[str, str], follow_aliases) -> str:
    """The record's profile after every merge of the run (earlier results may name since-absorbed profiles)."""
    if key not in cache:
        doc = ctx.records.read_item_or_none(key, key)
        profile, _ = follow_aliases(ctx, doc["profile_id"]) if doc and doc.get("profile_id") else (None, [])
        cache[key] = profile["id"] if profile else ""
    return cache[key]


def run_index_holders(args) -> int:
    from .identity import index_holders
    from .settings import get_settings
    from .store import open_store

    settings = get_settings()
    print(json.dumps(index_holders(open_store(settings), settings=settings)))
    return 0


def run_repair_index(args) -> int:
    from .identity import repair_index
    from .settings import get_settings
    from .store import open_store

    settings = get_settings()
    since = None if args.since_seconds is None else int(time.time()) - args.since_seconds
    print(json.dumps(repair_index(open_store(settings), settings=settings, since=since)))
    return 0


def run_rekey(args) -> int:
    from .identity import rekey
    from .settings import get_settings
    from .store import open_store

    settings = get_settings()
    print(json.dumps(rekey(open_store(settings), settings=settings)))
    return 0


def run_replay(args) -> int:
    from .identity.worker import replay_poison
    from .ingest.replay import replay_blob_trigger_poison, replay_failed_files, replay_quarantined_records
    from .settings import get_settings

    settings = get_settings()
    if args.quarantined_records is not None:
        return _replay_quarantined(replay_quarantined_records(settings, prefix=args.quarantined_records,
                                                              dry_run=args.dry_run), args.dry_run)
    if args.queue:
        reports = replay_poison(args.queue, settings, dry_run=args.dry_run)
        what = f"message(s) from {args.queue}-poison"
    elif args.blob_poison:
        reports = replay_blob_trigger_poison(settings, dry_run=args.dry_run)
        what = "blob(s) the blob trigger gave up on"
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


def _replay_quarantined(reports, dry_run: bool) -> int:
    """One JSON report per quarantine blob; exit 1 when a blob could not be replayed or kept lines."""
    blobs = records = lines = failed = 0
    for report in reports:
        blobs += 1
        records += report["records"] if "error" not in report else 0
        lines += len(report["left"])
        failed += "error" in report
        print(json.dumps(report, ensure_ascii=False))
    verb = "would replay" if dry_run else "replayed"
    print(f"{verb} {records} quarantined record(s) of {blobs} blob(s)"
          + (f"; {lines} line(s) could not be read and stay" if lines else "")
          + (f"; {failed} blob(s) could not be replayed" if failed else ""), file=sys.stderr)
    return 1 if lines or failed else 0
