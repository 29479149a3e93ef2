"""Train the identity match model without labels (Fellegi-Sunter, expectation-maximisation).

    python -m model_training.match_model --people 20000 --seed 11   # writes shared/identity/default_model.json
    ucp match-model FILE:MAPPING ... --out MODEL.json               # fits one to your own files (fit_match_model)

How it learns (Fellegi-Sunter as Splink does it, plus a third latent class), with no ground truth:
- u ("unrelated" class) is measured directly on random record pairs, which are almost all non-matches.
- m ("match" class) is measured on pairs that a strong identifier labels as one person (same email or loyalty
  id), each comparison only on pairs not selected by its own field; with too few such pairs, by two-class EM
  sessions blocked on birth date / full name with u fixed (Splink's method).
- On the candidate pairs of the resolver's own blocking keys, EM estimates the class priors and the levels of
  the "related" class (household members, twins, neighbours with one surname), with m and u held fixed.
- Term frequencies of given and family names are kept so common names (John, Smith) weigh less.
Evaluation against ground truth (when the data has it) is reported separately and never feeds training.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Iterable, Mapping, Sequence

import numpy as np

from shared.identity.matching import (CLASSES, COMPARISON_NAMES, COMPARISONS, DEFAULT_MODEL_PATH, MatchModel,
                                      blocking_keys, compare, name_codes)
from shared.models import CustomerRecord
from shared.normalize import NormalizedRecord, normalize_record

MAX_BLOCK = 40  # blocks larger than this are too common to be informative (and quadratic)
TF_TOP = 5000
TF_MIN_COUNT = 3
# Measured on unseen generated data (5k customers, seed 2, resolver end to end, pairwise P/R):
# 0.005 -> 0.976/0.915, 0.01 -> 0.992/0.908, 0.02 -> 0.993/0.904. A sharp lever on precision.
RELATED_SAME_GIVEN_NAME = 0.01
MIN_LABELLED_PAIRS = 200  # fewer pairs labelled by strong identifiers than this: estimate m with EM sessions

# Starting points for EM: what a match, a related person and their differences usually look like. Only the
# shape matters (which class agrees on what); EM moves the numbers.
_INIT = {
    "match": {
        "given_name": [0.80, 0.08, 0.05, 0.03, 0.01, 0.03], "family_name": [0.85, 0.06, 0.03, 0.06],
        "birth_date": [0.90, 0.02, 0.03, 0.05], "location": [0.60, 0.10, 0.10, 0.10, 0.10],
        "phone": [0.80, 0.05, 0.15], "email": [0.60, 0.15, 0.05, 0.20],
    },
    "related": {
        "given_name": [0.05, 0.02, 0.05, 0.05, 0.03, 0.80], "family_name": [0.70, 0.05, 0.05, 0.20],
        "birth_date": [0.05, 0.01, 0.10, 0.84], "location": [0.50, 0.05, 0.25, 0.10, 0.10],
        "phone": [0.50, 0.02, 0.48], "email": [0.10, 0.02, 0.05, 0.83],
    },
}


def training_keys(n: NormalizedRecord) -> list[str]:
    """The resolver's blocking keys plus blocks by full name (alone and with the city), as Splink separates the
    blocking rules EM trains on from those it predicts with. The resolver does not block on a name alone (those
    pairs scored low and cost most of its time), but namesakes are what teaches EM how much an agreeing name is
    worth in the "related" and "unrelated" classes: trained without them, the model linked less (F1 -0.004)."""
    keys = blocking_keys(n)
    codes = name_codes(n)
    if len(codes) == 2:
        keys += [f"nm:{'+'.join(codes)}|{place}" for place in dict.fromkeys((n.city, "*")) if place]
    return keys


def candidate_pairs(normalized: Sequence[NormalizedRecord], *, max_block: int = MAX_BLOCK,
                    key_prefixes: tuple[str, ...] | None = None, keys=blocking_keys) -> set[tuple[int, int]]:
    """Index pairs sharing a key (by default the resolver's blocking keys; optionally only keys with these
    prefixes; blocks above max_block records are skipped)."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(normalized):
        for key in keys(record):
            if key_prefixes is None or key.startswith(key_prefixes):
                blocks[key].append(index)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if len(members) < 2 or len(members) > max_block:
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                pairs.add((members[x], members[y]))
    return pairs


def random_pairs(n: int, count: int, *, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        i, j = rng.randrange(n), rng.randrange(n)
        if i != j:
            out.append((i, j))
    return out


def _level_frequencies(levels: Iterable[tuple[int, ...]]) -> dict[str, list[float]]:
    counts = [Counter() for _ in COMPARISON_NAMES]
    for vector in levels:
        for index, level in enumerate(vector):
            if level:
                counts[index][level] += 1
    out = {}
    for index, name in enumerate(COMPARISON_NAMES):
        n_levels = len(COMPARISONS[name])
        total = sum(counts[index].values())
        # Laplace smoothing: a level never seen among random pairs is rare, not impossible.
        out[name] = [0.0] + [(counts[index][level] + 1) / (total + n_levels - 1) for level in range(1, n_levels)]
    return out


def term_frequencies(normalized: Sequence[NormalizedRecord]) -> dict[str, dict[str, float]]:
    out = {}
    for name, attr in (("given_name", "given_name"), ("family_name", "family_name")):
        counts = Counter(getattr(r, attr) for r in normalized if getattr(r, attr))
        total = sum(counts.values()) or 1
        out[name] = {value: round(c / total, 8) for value, c in counts.most_common(TF_TOP) if c >= TF_MIN_COUNT}
    return out


def em(patterns: np.ndarray, counts: np.ndarray, params: list[list[np.ndarray]], free: list[set[int]], *,
       lambdas: Sequence[float], max_iterations: int = 500, tolerance: float = 1e-7) -> tuple[np.ndarray, list[list[np.ndarray]], dict]:
    """Expectation-maximisation over distinct comparison vectors (patterns) weighted by their counts.

    params[k][c] holds the level probabilities of class k for comparison c (index 0 = null, ignored);
    only the comparisons in free[k] are re-estimated, the others stay fixed.
    """
    params = [[p.copy() for p in by_class] for by_class in params]
    lambdas = np.asarray(lambdas, dtype=float)
    converged, ll, iteration = False, None, 0
    for iteration in range(1, max_iterations + 1):
        log_like = np.tile(np.log(np.maximum(lambdas, 1e-300)), (len(patterns), 1))
        for k, by_class in enumerate(params):
            for c, probs in enumerate(by_class):
                level = patterns[:, c]
                log_like[:, k] += np.where(level > 0, np.log(np.maximum(probs[level], 1e-300)), 0.0)
        top = log_like.max(axis=1, keepdims=True)
        joint = np.exp(log_like - top)
        total = joint.sum(axis=1, keepdims=True)
        ll = float(((np.log(total[:, 0]) + top[:, 0]) * counts).sum())
        weighted = joint / total * counts[:, None]
        new_lambdas = weighted.sum(axis=0) / counts.sum()
        change = float(np.abs(new_lambdas - lambdas).max())
        lambdas = new_lambdas
        for k, comparisons in enumerate(free):
            for c in comparisons:
                n_levels = len(params[k][c])
                sums = np.bincount(patterns[:, c], weights=weighted[:, k], minlength=n_levels)
                sums[0] = 0.0
                updated = (sums + 0.01) / (sums[1:].sum() + 0.01 * (n_levels - 1))
                updated[0] = 0.0
                change = max(change, float(np.abs(updated - params[k][c]).max()))
                params[k][c] = updated
        if change < tolerance:
            converged = True
            break
    return lambdas, params, {"iterations": iteration, "converged": converged, "log_likelihood": ll}


def _patterns(vectors: Iterable[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    pattern_counts = Counter(vectors)
    if not pattern_counts:
        return np.zeros((0, len(COMPARISON_NAMES)), dtype=np.int64), np.zeros(0)
    return (np.array(list(pattern_counts), dtype=np.int64),
            np.array(list(pattern_counts.values()), dtype=float))


def _init(cls: str) -> list[np.ndarray]:
    return [np.array([0.0] + _INIT[cls][name], dtype=float) for name in COMPARISON_NAMES]


def _pairs_by(normalized: Sequence[NormalizedRecord], key_of) -> set[tuple[int, int]]:
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(normalized):
        key = key_of(record)
        if key:
            blocks[key].append(index)
    pairs = set()
    for members in blocks.values():
        if 2 <= len(members) <= MAX_BLOCK:
            pairs.update((members[x], members[y]) for x in range(len(members)) for y in range(x + 1, len(members)))
    return pairs


# Training sessions (as in Splink): pairs blocked on some fields estimate m for the OTHER comparisons, since
# among those pairs the non-matches agree on the blocked fields by construction, not by chance.
_SESSIONS = {
    "birth_date": (lambda r: r.birth_date, {"birth_date"}),
    "full_name": (lambda r: f"{r.given_canonical}|{r.family_name}" if r.given_canonical and r.family_name else None,
                  {"given_name", "family_name"}),
}


def estimate_m_by_sessions(normalized: Sequence[NormalizedRecord], u: list[np.ndarray]) -> tuple[list[np.ndarray | None], dict]:
    """m per comparison from two-class EM sessions with u fixed, averaged over the sessions where it was free."""
    estimates: dict[int, list[np.ndarray]] = defaultdict(list)
    info = {}
    for session, (key_of, blocked) in _SESSIONS.items():
        pairs = _pairs_by(normalized, key_of)
        patterns, counts = _patterns(compare(normalized[i], normalized[j]) for i, j in pairs)
        if not len(patterns):
            continue
        free = {c for c, name in enumerate(COMPARISON_NAMES) if name not in blocked}
        lambdas, params, session_info = em(patterns, counts, [_init("match"), u], [free, set()], lambdas=[0.5, 0.5])
        for c in free:
            estimates[c].append(params[0][c])
        info[session] = {"pairs": len(pairs), "match_share": round(float(lambdas[0]), 4), **session_info}
    return [np.mean(estimates[c], axis=0) if estimates.get(c) else None for c in range(len(COMPARISON_NAMES))], info


_GIVEN_AGREES = (1, 2, 3)  # exact, nickname, close spelling
_DOB_DIFFERENT = 4


def _confirmed(vector: tuple[int, ...], skip: str) -> bool:
    """A second, person-level confirmation that a pair sharing an identifier is one person.

    Identifiers are shared within families (a family email, a landline), so a shared identifier alone would
    teach m that given names and birth dates often differ. The confirmation never uses the comparison whose
    m is being estimated: given names are confirmed by an equal birth date, everything else by the given name
    (and a birth date that does not disagree).
    """
    given, birth = vector[0], vector[2]
    if skip == "given_name":
        return birth == 1
    if skip == "birth_date":
        return given in _GIVEN_AGREES
    return given in _GIVEN_AGREES and birth != _DOB_DIFFERENT


def estimate_m_by_identifiers(normalized: Sequence[NormalizedRecord]) -> tuple[list[np.ndarray | None], dict]:
    """m per comparison from pairs that strong identifiers label as the same person.

    Pairs sharing an email or loyalty id give m for every comparison but email; pairs sharing a phone or a
    loyalty id give m for email. A comparison never learns from pairs selected by its own field, and each pair
    needs a person-level confirmation (see _confirmed).
    """
    loyalty = _pairs_by(normalized, lambda r: r.loyalty_id)
    by_email = {p: compare(normalized[p[0]], normalized[p[1]]) for p in _pairs_by(normalized, lambda r: r.email) | loyalty}
    by_phone = {p: compare(normalized[p[0]], normalized[p[1]]) for p in _pairs_by(normalized, lambda r: r.phone) | loyalty}
    out: list[np.ndarray | None] = []
    used = {}
    for c, name in enumerate(COMPARISON_NAMES):
        vectors = [v for v in (by_phone if name == "email" else by_email).values() if _confirmed(v, name)]
        counts = _level_counts(vectors)[c]
        used[name] = len(vectors)
        out.append(counts / counts.sum() if counts.sum() - 0.5 * (len(counts) - 1) >= MIN_LABELLED_PAIRS else None)
    return out, {"pairs_sharing_email_or_loyalty_id": len(by_email), "pairs_sharing_phone_or_loyalty_id": len(by_phone),
                 "confirmed_pairs_used": used}


def _level_counts(vectors: Iterable[tuple[int, ...]]) -> list[np.ndarray]:
    counts = [np.zeros(len(COMPARISONS[name])) for name in COMPARISON_NAMES]
    for vector in vectors:
        for c, level in enumerate(vector):
            if level:
                counts[c][level] += 1
    # Smoothing: a level not seen among labelled pairs is rare for a match, not impossible.
    for c in counts:
        c[1:] += 0.5
    return counts


HOUSEHOLD_KEYS = ("pc:", "ph:")  # blocking keys of people who share a place or a phone


def estimate_related(normalized: Sequence[NormalizedRecord], m: list[np.ndarray], u: list[np.ndarray], *,
                     key_prefixes: tuple[str, ...] | None = None) -> tuple[list[np.ndarray], dict]:
    """Level probabilities of the "related" class: EM with m and u fixed on the candidate pairs (all of them,
    or those of some blocking keys). The class gathers every non-match that is not a random pair: households,
    twins, neighbours and namesakes that blocking brought together. (Learned on household keys alone
    (HOUSEHOLD_KEYS) it describes households better but leaves namesakes to the match class: measured worse.)

    The given name is not learned: a relative's given name is taken to agree with yours no more often than a
    stranger's (u), else EM lets this class absorb matches that lack a birth date and email, and with them the
    evidence a same given name carries; except that relatives do share names more than strangers (Jr/Sr, a
    mother and daughter): at least RELATED_SAME_GIVEN_NAME, so a same name at a same address is not proof alone.
    """
    related = _init("related")
    given = COMPARISON_NAMES.index("given_name")
    related[given] = u[given].copy()
    exact_share = max(related[given][1], RELATED_SAME_GIVEN_NAME)
    related[given][2:] *= (1 - exact_share) / related[given][2:].sum()
    related[given][1] = exact_share
    pairs = candidate_pairs(normalized, key_prefixes=key_prefixes, keys=training_keys)
    if not pairs:
        return related, {"pairs": 0}
    patterns, counts = _patterns(compare(normalized[i], normalized[j]) for i, j in pairs)
    free = set(range(len(COMPARISON_NAMES))) - {given}
    shares, fitted, info = em(patterns, counts, [m, related, u], [set(), free, set()], lambdas=[0.3, 0.3, 0.4])
    return fitted[1], {"pairs": len(pairs), "shares": [round(float(x), 5) for x in shares], **info}


def train_match_model(records: Iterable[CustomerRecord | NormalizedRecord], *, seed: int = 1,
                      n_random_pairs: int = 200_000, version: str | None = None) -> MatchModel:
    """Train a MatchModel on unlabelled customer records (or records normalized already) with EM.

    1. u: level frequencies among random pairs.  2. m: from pairs a strong identifier (email, loyalty id)
    labels as one person, each comparison learning only from pairs not selected by its own field (two-class EM
    sessions, as in Splink, when there are too few).  3. the "related" class and the class priors: three-class
    EM on the resolver's own candidate pairs with m and u fixed.
    """
    started = time.perf_counter()
    normalized = [r if isinstance(r, NormalizedRecord) else normalize_record(r) for r in records]
    if len(normalized) < 10:
        raise ValueError("need at least 10 records to train a match model")
    u_freq = _level_frequencies(compare(normalized[i], normalized[j])
                                for i, j in random_pairs(len(normalized), n_random_pairs, seed=seed))
    u = [np.array(u_freq[name], dtype=float) for name in COMPARISON_NAMES]
    m_labelled, labelled_info = estimate_m_by_identifiers(normalized)
    m_sessions, session_info = estimate_m_by_sessions(normalized, u)
    m = [labelled if labelled is not None else (session if session is not None else _init("match")[c])
         for c, (labelled, session) in enumerate(zip(m_labelled, m_sessions))]
    m_source = {name: ("identifiers" if m_labelled[c] is not None else "sessions" if m_sessions[c] is not None else "prior")
                for c, name in enumerate(COMPARISON_NAMES)}
    pairs = candidate_pairs(normalized, keys=training_keys)
    if not pairs:
        raise ValueError("no candidate pairs: the records share no blocking key")
    patterns, counts = _patterns(compare(normalized[i], normalized[j]) for i, j in pairs)
    related, related_info = estimate_related(normalized, m, u)
    # Class priors: EM on all candidate pairs with every level probability fixed.
    shares, fitted, info = em(patterns, counts, [m, related, u], [set(), set(), set()], lambdas=[0.3, 0.3, 0.4])
    params = {name: {cls: [round(float(p), 10) for p in fitted[k][c]] for k, cls in enumerate(CLASSES)}
              for c, name in enumerate(COMPARISON_NAMES)}
    # Priors over ALL record pairs (not candidate pairs): a score then means "P(match) for this pair given what
    # it compares", whichever blocking key found it, and u measured on random pairs is the right reference.
    all_pairs = len(normalized) * (len(normalized) - 1) / 2
    n_candidates = float(counts.sum())
    lambda_match = float(shares[0]) * n_candidates / all_pairs
    lambda_related = float(shares[1]) * n_candidates / all_pairs
    lambdas = [lambda_match, lambda_related, 1.0 - lambda_match - lambda_related]
    info["candidate_shares"] = [round(float(x), 5) for x in shares]
    info["related"] = related_info
    tf = term_frequencies(normalized)
    digest = hashlib.sha256(json.dumps([lambdas, params], sort_keys=True).encode()).hexdigest()[:10]
    metadata = {
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records": len(normalized), "candidate_pairs": len(pairs), "distinct_patterns": len(patterns),
        "random_pairs": n_random_pairs, "seed": seed, "seconds": round(time.perf_counter() - started, 2),
        "m_source": m_source, "m_identifiers": labelled_info, "m_sessions": session_info, "em": info,
    }
    return MatchModel(version=version or f"fs3-{digest}", lambdas=lambdas, params=params,
                      term_frequencies=tf, population=len(normalized), metadata=metadata)


# --- Fitting to a retailer's own records (`ucp match-model`) ----------------------------------------------

# The fewest usable records `ucp match-model` fits a model to without --force. Measured on generated data (pair
# recall at 0.97 on 4,300 held-out records, precision 0.998 to 0.999 for all; the shipped model, fitted on 42,366
# records: 0.848): fitted on 240 records 0.747, 527 0.803, 1,020 0.820, 2,088 0.833, 4,212 0.842. Below about a
# thousand records too few pairs share an email or loyalty id to measure m on (MIN_LABELLED_PAIRS; m then comes
# from EM sessions alone), names are rarely seen often enough for term frequencies, and the fit links
# markedly less than the shipped model would.
MIN_FIT_RECORDS = 1000


class TooFewRecordsError(ValueError):
    """Too few usable records to fit a match model worth deploying."""


def fit_match_model(records: Iterable[CustomerRecord], *, seed: int = 1, population: int | None = None,
                    inputs: list[dict] | None = None, force: bool = False,
                    blocked: Mapping[str, frozenset[str]] | None = None) -> MatchModel:
    """A match model fitted, without labels, to a retailer's own customer records (`ucp match-model`).

    Trains on the records the resolver would resolve (not those it quarantines: no usable field; a record key
    given twice counts once, its last version, as the resolver keeps it), with train_match_model. The priors are
    set for a store of `population` records (default: the usable records). metadata records the provenance
    (`inputs` as the caller describes them: file names and counts, never record values), and the version says
    the model is fitted: fitted-<date>-<hash of its parameters>. Raises TooFewRecordsError below
    MIN_FIT_RECORDS usable records unless `force`. `blocked`: the deployment's blocked values
    (ProtectionPolicy.blocked_values), left out as the resolver leaves them out: a store's walk-in email shared by
    many customers must not teach the model that a shared email means one person.
    """
    from shared.identity.engine import normalize_for_resolution

    latest: dict[str, CustomerRecord] = {}
    read = 0
    for record in records:
        latest[record.key] = record
        read += 1
    normalized = [n for n in (normalize_for_resolution(record, blocked) for record in latest.values())
                  if isinstance(n, NormalizedRecord)]
    if len(normalized) < MIN_FIT_RECORDS and not force:
        raise TooFewRecordsError(
            f"{len(normalized)} usable customer records: a match model needs at least {MIN_FIT_RECORDS:,} to be "
            "fitted reliably (fewer cannot measure what a match looks like; the shipped model is then the better "
            "choice); --force fits it anyway")
    if population is not None and population < 2:
        raise ValueError(f"population {population}: the store size the priors are set for is at least 2 records")
    model = train_match_model(normalized, seed=seed)
    model = model.with_population(population or len(normalized))
    model.metadata.update({
        "data": "fitted", "inputs": list(inputs or []), "records_read": read,
        "duplicate_keys": read - len(latest), "unusable_records": len(latest) - len(normalized),
        "population": model.population,
    })
    digest = hashlib.sha256(json.dumps([model.lambdas, model.params, model.term_frequencies],
                                       sort_keys=True).encode()).hexdigest()[:10]
    model.version = f"fitted-{model.metadata['trained_at'][:10].replace('-', '')}-{digest}"
    return model


# --- Evaluation against ground truth (never used for training) --------------------------------------------

def evaluate_pairs(model: MatchModel, records: Sequence[CustomerRecord], person_ids: Sequence[str], *,
                   threshold: float = 0.97, review_threshold: float = 0.80) -> dict:
    """Pair-level precision/recall of the model on blocked candidate pairs, and blocking recall."""
    normalized = [normalize_record(r) for r in records]
    model = model.with_population(len(normalized))
    pairs = candidate_pairs(normalized, max_block=10_000)
    true_pairs = 0
    by_person = Counter(person_ids)
    true_pairs = sum(c * (c - 1) // 2 for c in by_person.values())
    tp = fp = fn_blocked = review = 0
    hard_fp = Counter()
    started = time.perf_counter()
    for i, j in pairs:
        same = person_ids[i] == person_ids[j]
        p = model.probability(normalized[i], normalized[j])
        if p >= threshold:
            if same:
                tp += 1
            else:
                fp += 1
                a, b = normalized[i], normalized[j]
                hard_fp["same_family_and_location" if a.family_name == b.family_name and a.postcode == b.postcode
                        else "other"] += 1
        elif same:
            fn_blocked += 1
            review += p >= review_threshold
    elapsed = time.perf_counter() - started
    blocked_true = tp + fn_blocked
    return {
        "records": len(records), "candidate_pairs": len(pairs), "true_pairs": true_pairs,
        "blocking_recall": round(blocked_true / true_pairs, 4) if true_pairs else None,
        "precision": round(tp / (tp + fp), 5) if tp + fp else None,
        "recall_of_blocked": round(tp / blocked_true, 4) if blocked_true else None,
        "recall": round(tp / true_pairs, 4) if true_pairs else None,
        "false_positives": fp, "false_positive_kinds": dict(hard_fp), "true_pairs_in_review": review,
        "score_us_per_pair": round(elapsed / max(len(pairs), 1) * 1e6, 2),
    }


def load_training_records(people: int, seed: int, *, data: str = "generated") -> tuple[list[CustomerRecord], list[str]]:
    """Customer records with their person ids (ground truth, for evaluation only).

    data="generated": the project's data generator (shared.generate), its files read through the source
    mappings exactly as ingestion reads them; data="synthetic": the small self-contained generator here.
    """
    if data == "synthetic":
        from model_training.synthetic_people import generate_records
        pairs = list(generate_records(people, seed=seed))
        return [r for r, _ in pairs], [p for _, p in pairs]
    import tempfile
    with tempfile.TemporaryDirectory(prefix="ucp-match-") as tmp:
        return read_generated_customers(tmp, customers=people, seed=seed)


def read_generated_customers(out_dir: str, *, customers: int, seed: int) -> tuple[list[CustomerRecord], list[str]]:
    """Generate a data set into out_dir and read back every valid customer record with its person id."""
    from pathlib import Path

    from shared.generate import GeneratorConfig, generate, load_truth_records
    from shared.ingest import load_mapping_file
    from shared.ingest.pipeline import iter_mapped

    generate(out_dir, GeneratorConfig(customers=customers, seed=seed), progress=False)
    truth = load_truth_records(out_dir)
    config = Path(__file__).resolve().parent.parent / "config" / "sources"
    records, persons = [], []
    for path in sorted(Path(out_dir, "landing").glob("*/customers/*")):
        mapping = load_mapping_file(config / f"{path.parent.parent.name}.customers.json")
        with path.open("rb") as stream:
            for mapped in iter_mapped(stream, path.name, mapping):
                if mapped.item is not None and mapped.item.key in truth:
                    records.append(mapped.item)
                    persons.append(truth[mapped.item.key])
    return records, persons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--eval-seed", type=int, default=12345, help="held-out data for the printed evaluation")
    parser.add_argument("--data", choices=("generated", "synthetic"), default="generated")
    parser.add_argument("--population", type=int, default=100_000,
                        help="store size (records) the shipped priors are set for; see MatchModel.with_population")
    parser.add_argument("--out", default=str(DEFAULT_MODEL_PATH))
    args = parser.parse_args(argv)
    records, _ = load_training_records(args.people, args.seed, data=args.data)
    model = train_match_model(records, seed=args.seed)
    model.metadata["data"] = args.data
    model = model.with_population(args.population)
    model.save(args.out)
    held_out, persons = load_training_records(max(args.people // 4, 1000), args.eval_seed, data=args.data)
    report = {"version": model.version, "out": args.out, "lambdas": model.lambdas, "training": model.metadata,
              "held_out": evaluate_pairs(model, held_out, persons)}
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
