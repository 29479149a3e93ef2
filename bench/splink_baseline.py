"""The batch reference for issue #5: Splink (DuckDB backend) on exactly the customer records ucp resolves,
scored with the same metric helpers as bench/identity_accuracy.py, so the two compare figure for figure.

    python -m bench.splink_baseline [--customers 10000] [--seed 1] [--data DIR]

Same seed and size as `python -m bench.identity_accuracy` = same records. Splink gets the fields AFTER ucp's
normalization (shared.normalize.normalize_record: folded names, canonical given name, ISO birth date, email
and its user part, E.164 phone, postcode, city, address, identifiers with placeholders removed), so the
comparison is about the linker, not the cleaning. It is configured as Splink's own tutorials do: the prior
from deterministic rules, u from random sampling, m by expectation maximisation over two blocking rules, term
frequency adjustments on names, email, phone, postcode and city, predict over recall-oriented blocking rules
(shared identifiers, email user, name+birth date, postcode+name, swapped names, ...), then connected
components at each threshold. Shared email, phone, loyalty id and custom identifiers are exact-match
comparisons and blocking rules, as ucp links on them. Two choices a careful user makes after looking at the
model: postcode, address and city form one comparison (not three that count one household's address thrice),
and the EM name block is narrowed by postcode (see train()).

Figures per threshold (0.5, 0.9, 0.95, 0.99, 0.999): pairwise and cluster metrics over the records ucp does
not quarantine (ucp's own scope, as identity_accuracy scores it), the pairwise F1 over all records, seconds;
the scored candidate pairs before clustering (blocking recall, pair precision/recall, ROC/PR AUC) and what
the false pairs scored as matches share. The best F1 over the thresholds is chosen on the labels, which
flatters Splink; `unlabelled_choice` is the threshold a user without labels would take (0.95, the one
Splink's tutorials cluster at).

Splink is a bench-only dependency: `make bench-setup` (requirements-bench.txt), never installed by CI.
"""
from __future__ import annotations

import argparse
import logging
import re
import time
from collections import Counter
from typing import Any, Hashable, Mapping, Sequence

from bench.harness import run_benchmark
from bench.metrics import PeakRSS, classification_scores, cluster_scores

THRESHOLDS = (0.5, 0.9, 0.95, 0.99, 0.999)  # plus 0.999, a cut Splink users also take
UNLABELLED_CHOICE = 0.95  # the clustering threshold of Splink's tutorials
SCORE_KEYS = ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_f1", "purity", "profiles",
              "split_people", "over_merged_profiles", "exact_people_rate")


def _column_name(id_type: str) -> str:
    return "id_" + re.sub(r"[^a-z0-9]+", "_", id_type.lower()).strip("_")


def splink_rows(normalized: Sequence) -> tuple[list[dict[str, Any]], list[str]]:
    """One input row per normalized record, and the columns of its custom identifier types.

    Strong identifiers go through shared.normalize.strong_identifiers, so placeholders ucp ignores
    (test@test.com, 0000000000) are null here too. Soundex codes are derived columns for blocking only, as
    Splink's docs advise for phonetic keys (computed the way ucp computes its own)."""
    from shared.identity.matching import _phonetic
    from shared.normalize import strong_identifiers

    id_columns = sorted({_column_name(t) for n in normalized for t in n.identifiers})
    rows = []
    for n in normalized:
        strong = dict(strong_identifiers(n))
        row = {
            "unique_id": n.key, "source": n.source,
            "given_name": n.given_name, "family_name": n.family_name, "given_canonical": n.given_canonical,
            "full_name": f"{n.given_name} {n.family_name}" if n.given_name and n.family_name else None,
            "given_soundex": _phonetic(n.given_canonical or n.given_name), "family_soundex": _phonetic(n.family_name),
            "birth_date": n.birth_date,
            "email": strong.get("email"), "email_user": n.email_user if strong.get("email") else None,
            "phone": strong.get("phone"), "loyalty_id": strong.get("loyalty_id"),
            "address": n.address, "postcode": n.postcode, "city": n.city, "country": n.country,
        }
        row.update(dict.fromkeys(id_columns))
        row.update({_column_name(t): v for t, v in strong.items() if t not in ("email", "phone", "loyalty_id")})
        rows.append(row)
    return rows, id_columns


def _name_comparison():
    """Splink's ForenameSurnameComparison levels plus a nickname level on ucp's canonical given name."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(output_column_name="name", comparison_levels=[
        cll.And(cll.NullLevel("given_name"), cll.NullLevel("family_name")),
        cll.ExactMatchLevel("full_name").configure(tf_adjustment_column="full_name"),
        cll.And(cll.ExactMatchLevel("given_canonical"), cll.ExactMatchLevel("family_name")).configure(
            label_for_charts="Nickname, same family name"),
        cll.ColumnsReversedLevel("given_name", "family_name", symmetrical=True),
        cll.And(cll.JaroWinklerLevel("given_name", 0.92), cll.JaroWinklerLevel("family_name", 0.92)),
        cll.And(cll.JaroWinklerLevel("given_name", 0.88), cll.JaroWinklerLevel("family_name", 0.88)),
        cll.ExactMatchLevel("family_name").configure(tf_adjustment_column="family_name"),
        cll.ExactMatchLevel("given_name").configure(tf_adjustment_column="given_name"),
        cll.ElseLevel(),
    ])


def _identifier_comparison(id_columns: list[str]):
    """Custom identifier types in one comparison: they are sparse, one m/u per type would barely train."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    both = " or ".join(f'("{c}_l" is not null and "{c}_r" is not null)' for c in id_columns)
    same = " or ".join(f'"{c}_l" = "{c}_r"' for c in id_columns)
    return cl.CustomComparison(output_column_name="other_identifiers", comparison_levels=[
        cll.CustomLevel(f"not ({both})", label_for_charts="No identifier type in common").configure(
            is_null_level=True),
        cll.CustomLevel(same, label_for_charts="A shared identifier"),
        cll.ElseLevel(),
    ])


def _location_comparison():
    """Postcode, address and city in ONE comparison: they move together (a household shares all three), and
    as three comparisons Fellegi-Sunter would count the same evidence three times."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(output_column_name="location", comparison_levels=[
        cll.And(cll.NullLevel("postcode"), cll.NullLevel("address"), cll.NullLevel("city")),
        cll.And(cll.ExactMatchLevel("postcode"), cll.ExactMatchLevel("address")),
        cll.And(cll.ExactMatchLevel("postcode"), cll.JaroWinklerLevel("address", 0.9)),
        cll.ExactMatchLevel("postcode").configure(tf_adjustment_column="postcode"),
        cll.And(cll.ExactMatchLevel("city"), cll.JaroWinklerLevel("address", 0.9)),
        cll.DamerauLevenshteinLevel("postcode", 1),
        cll.ExactMatchLevel("city").configure(tf_adjustment_column="city"),
        cll.ElseLevel(),
    ])


def comparisons(id_columns: list[str]) -> list:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    out = [
        _name_comparison(),
        cl.DateOfBirthComparison("birth_date", input_is_string=True),
        cl.EmailComparison("email"),
        cl.CustomComparison(output_column_name="phone", comparison_levels=[
            cll.NullLevel("phone"),
            cll.ExactMatchLevel("phone").configure(tf_adjustment_column="phone"),
            # the national number: one source parsed it with the wrong default region
            cll.CustomLevel("right(phone_l, 9) = right(phone_r, 9)", label_for_charts="Same national number"),
            cll.DamerauLevenshteinLevel("phone", 1),
            cll.ElseLevel(),
        ]),
        _location_comparison(),
        cl.ExactMatch("loyalty_id"),
    ]
    if id_columns:
        out.append(_identifier_comparison(id_columns))
    return out


def prediction_blocking_rules(id_columns: list[str]) -> list:
    from splink import block_on
    from splink.blocking_rule_library import CustomRule

    return [
        block_on("email"), block_on("phone"), block_on("loyalty_id"), *(block_on(c) for c in id_columns),
        block_on("email_user"),
        block_on("given_name", "family_name"),
        CustomRule("l.given_name = r.family_name and l.family_name = r.given_name"),  # swapped names
        block_on("family_soundex", "birth_date"),
        block_on("given_soundex", "birth_date"),
        block_on("postcode", "family_soundex"),
        block_on("postcode", "given_soundex"),
        block_on("birth_date", "postcode"),
        block_on("address", "city"),
        block_on("given_soundex", "family_soundex", "city"),
    ]


def build_linker(rows: list[dict], id_columns: list[str], *, verbose: bool = False):
    import pandas as pd
    from splink import DuckDBAPI, Linker, SettingsCreator

    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons(id_columns),
        blocking_rules_to_generate_predictions=prediction_blocking_rules(id_columns),
        retain_intermediate_calculation_columns=False,
    )
    db_api = DuckDBAPI()
    table = db_api.register(pd.DataFrame(rows), dataset_display_name="customers")
    return Linker(table, settings, log_level=logging.INFO if verbose else logging.WARNING)


def train(linker, *, seed: int, max_pairs: float) -> None:
    """The tutorial's sequence: the prior from deterministic rules, u by random sampling, m by EM on two
    blocking rules that between them train every comparison. The tutorial's first rule, given+family name,
    is narrowed by postcode, as a user checking the m values would: on common names EM's match class took in
    different people and put 28% of true matches at a different birth date (truly under 1%)."""
    from splink import block_on

    linker.training.estimate_probability_two_random_records_match(
        [block_on("email"), block_on("phone"), block_on("given_name", "family_name", "birth_date")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    for rule in (block_on("given_name", "family_name", "postcode"), block_on("birth_date")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule, estimate_without_term_frequencies=True)


def scored_pairs(df_predict) -> tuple[list[str], list[str], list[float]]:
    columns = df_predict.as_duckdbpyrelation().select("unique_id_l, unique_id_r, match_probability").fetchnumpy()
    return list(columns["unique_id_l"]), list(columns["unique_id_r"]), [float(p) for p in columns["match_probability"]]


def false_pair_kind(a: dict, b: dict) -> str:
    """What two records of different people that Splink linked have in common (the first that applies)."""
    for field in ("email", "phone", "loyalty_id"):
        if a[field] and a[field] == b[field]:
            return f"shared {field}"
    if a["family_name"] and a["family_name"] == b["family_name"] and a["postcode"] and a["postcode"] == b["postcode"]:
        return "same family name and postcode" + (", other given name" if a["given_name"] != b["given_name"] else "")
    if a["full_name"] and a["full_name"] == b["full_name"]:
        return "same full name"
    return "other"


def pair_figures(left, right, probabilities, truth: dict, rows_by_key: dict) -> dict[str, Any]:
    """Splink's scored candidate pairs before clustering, as identity_accuracy reports ucp's model on its own;
    and what the false pairs it scores as matches (at the unlabelled choice) have in common."""
    by_person = Counter(truth.values())
    true_pairs = sum(c * (c - 1) // 2 for c in by_person.values())
    labels = [int(truth[a] == truth[b]) for a, b in zip(left, right)]
    figures: dict[str, Any] = {"candidate_pairs": len(labels), "true_pairs": true_pairs,
                               "blocking_recall": round(sum(labels) / max(1, true_pairs), 5)}
    for t in THRESHOLDS:
        matched = [y for y, p in zip(labels, probabilities) if p >= t]
        figures[f"pair_precision_at_{t}"] = round(sum(matched) / max(1, len(matched)), 5)
        figures[f"pair_recall_at_{t}"] = round(sum(matched) / max(1, true_pairs), 5)
    false_kinds = Counter(false_pair_kind(rows_by_key[a], rows_by_key[b])
                          for a, b, y, p in zip(left, right, labels, probabilities) if not y and p >= UNLABELLED_CHOICE)
    figures[f"false_pairs_at_{UNLABELLED_CHOICE}_by_kind"] = dict(false_kinds.most_common())
    if labels and 0 < sum(labels) < len(labels):
        scores = classification_scores(labels, probabilities, threshold=UNLABELLED_CHOICE)
        figures.update({k: round(scores[k], 5) for k in ("roc_auc", "pr_auc", "brier")})
    return figures


def fit_and_predict(rows: list[dict], id_columns: list[str], *, seed: int, max_pairs: float,
                    verbose: bool = False):
    """(linker, every candidate pair scored, seconds per step)."""
    t0 = time.perf_counter()
    linker = build_linker(rows, id_columns, verbose=verbose)
    train(linker, seed=seed, max_pairs=max_pairs)
    t1 = time.perf_counter()
    df_predict = linker.inference.predict(warning_mode="never")
    return linker, df_predict, {"train_s": t1 - t0, "predict_s": time.perf_counter() - t1}


def clusters_at(linker, df_predict, threshold: float) -> dict[str, Any]:
    """record key -> Splink cluster id: connected components of the pairs scored at or above the threshold."""
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(df_predict,
                                                                            threshold_match_probability=threshold)
    columns = clusters.as_duckdbpyrelation().select("unique_id, cluster_id").fetchnumpy()
    clusters.drop_table_from_database_and_remove_from_cache()
    return dict(zip(columns["unique_id"], columns["cluster_id"]))


def cluster_figures(linker, df_predict, truth: dict, scope: set[str], clusters: dict | None = None) -> dict[str, Any]:
    """Figures at each threshold over ucp's scope (records it does not quarantine), plus F1 over all records.
    A dict given as clusters receives each threshold's clusters (record key -> cluster id)."""
    out = {}
    for t in THRESHOLDS:
        t0 = time.perf_counter()
        assignment = clusters_at(linker, df_predict, t)
        seconds = time.perf_counter() - t0
        if clusters is not None:
            clusters[t] = assignment
        scores = cluster_scores(truth, {k: v for k, v in assignment.items() if k in scope})
        everything = cluster_scores(truth, assignment, missing="singleton")
        out[str(t)] = {**{k: round(v, 5) if isinstance(v, float) else v for k, v in scores.items() if k in SCORE_KEYS},
                       "pairwise_f1_all_records": round(everything["pairwise_f1"], 5),
                       "cluster_s": round(seconds, 2)}
    return out


def require_splink() -> None:
    """A clear error when Splink is not installed (it is bench-only)."""
    try:
        import duckdb  # noqa: F401
        import splink  # noqa: F401
    except ImportError as err:
        raise RuntimeError("splink is not installed: run `make bench-setup` (requirements-bench.txt)") from err


def ucp_scope(normalized: Sequence) -> set[str]:
    """The keys of the records ucp resolves: it quarantines the rest (no usable field) and scores without them."""
    return {n.key for n in normalized if not n.is_empty}


def splink_figures(normalized: Sequence, truth: Mapping[Hashable, Hashable], *, seed: int, max_pairs: float,
                   verbose: bool = False, clusters: dict | None = None) -> dict[str, Any]:
    """Splink trained (unsupervised) and run on normalized records, scored against the truth (record key ->
    person) at each threshold over ucp's scope (ucp_scope); records of the truth Splink is not given count as
    records of their own in pairwise_f1_all_records. A dict given as clusters receives the clusters."""
    require_splink()
    import duckdb
    import splink

    scope = ucp_scope(normalized)
    rows, id_columns = splink_rows(normalized)
    figures: dict[str, Any] = {
        "splink_version": splink.__version__, "duckdb_version": duckdb.__version__, "records": len(rows),
        "records_in_ucp_scope": len(scope), "people": len(set(truth.values())),
        "input": "fields normalized by shared.normalize.normalize_record (as ucp)",
        "custom_identifier_columns": id_columns,
    }
    with PeakRSS() as memory:
        linker, df_predict, timings = fit_and_predict(rows, id_columns, seed=seed, max_pairs=max_pairs,
                                                      verbose=verbose)
        figures["pairs"] = pair_figures(*scored_pairs(df_predict), truth, {row["unique_id"]: row for row in rows})
        t0 = time.perf_counter()
        figures["thresholds"] = cluster_figures(linker, df_predict, truth, scope, clusters)
        timings["cluster_all_thresholds_s"] = time.perf_counter() - t0
    figures["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    figures["seconds"]["splink_total_s"] = round(sum(timings.values()), 2)
    figures["splink_peak_rss_mb"] = round(memory.peak_mb, 1)
    figures["splink_rss_growth_mb"] = round(memory.growth_mb, 1)
    best = max(THRESHOLDS, key=lambda t: figures["thresholds"][str(t)]["pairwise_f1"])
    figures["best_f1_threshold_chosen_on_labels"] = best
    figures["best_f1"] = figures["thresholds"][str(best)]["pairwise_f1"]
    figures["unlabelled_choice"] = UNLABELLED_CHOICE
    figures["unlabelled_choice_scores"] = figures["thresholds"][str(UNLABELLED_CHOICE)]
    return figures


def run_splink(records, persons, *, seed: int, max_pairs: float, verbose: bool = False) -> dict[str, Any]:
    """splink_figures on customer records (normalized here) and their people."""
    require_splink()
    from shared.normalize import normalize_record

    truth = {r.key: p for r, p in zip(records, persons)}
    normalized = [normalize_record(r) for r in records]
    return splink_figures(normalized, truth, seed=seed, max_pairs=max_pairs, verbose=verbose)


def measure(args) -> dict[str, Any]:
    from model_training.match_model import load_training_records, read_generated_customers

    t0 = time.perf_counter()
    if args.data:
        records, persons = read_generated_customers(args.data, customers=args.customers, seed=args.seed)
    else:
        records, persons = load_training_records(args.customers, args.seed)
    load_s = time.perf_counter() - t0
    figures = run_splink(records, persons, seed=args.seed, max_pairs=args.max_pairs, verbose=args.verbose)
    figures["seconds"]["generate_and_read_s"] = round(load_s, 2)
    figures["customers"] = args.customers
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", help="generate into (and keep) this folder instead of a temporary one")
    parser.add_argument("--max-pairs", type=float, default=1e7,
                        help="pairs sampled to estimate u (Splink: 1e7 is often adequate, 1e8+ is better)")
    parser.add_argument("--verbose", action="store_true", help="Splink's INFO log on stderr")
    args = parser.parse_args(argv)
    return run_benchmark("splink_baseline", lambda: measure(args), params=vars(args), seed=args.seed)


if __name__ == "__main__":
    main()
