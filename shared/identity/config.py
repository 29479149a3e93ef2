"""The resolver's rules as a deployment sets them: email normalization's provider rules, merge protection,
survivorship and candidate limits, from a JSON file (`config/identity.json`, shipped with the defaults;
UCP_IDENTITY_CONFIG points at another); and the match model (`shared/identity/default_model.json`, shipped;
UCP_MATCH_MODEL points at one `ucp match-model` fitted).

Match and review thresholds are settings of their own (UCP_MATCH_THRESHOLD, UCP_REVIEW_THRESHOLD). A file that
does not validate stops the resolver with every error located, rather than resolving with rules nobody chose;
likewise a model file that does not load (never a silent fall back to the shipped model).
"""
from __future__ import annotations

import json
import math
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.normalize import NormalizedRecord

from .docs import ResolverConfig
from .matching import CLASSES, COMPARISONS, TF_COMPARISONS, MatchModel
from .protection import MAX_RECORDS_LIMIT, SURNAMES, ProtectionPolicy
from .survivorship import SurvivorshipPolicy

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "identity.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: true or "5" is no limit of 5


# What a limit-1 attribute can name: a field merge protection compares on the records (NormalizedRecord), or
# "surnames": double surnames, which conflict as a parent's and a child's do (protection.SURNAMES).
LIMIT_ONE_ATTRIBUTES = (frozenset(f.name for f in fields(NormalizedRecord)) - {"key", "source", "identifiers"}
                        | {SURNAMES})


class ProtectionConfig(_Strict):
    limits: dict[str, int | None] = Field(default_factory=lambda: dict(ProtectionPolicy().limits))
    default_limit: int = Field(5, ge=1)
    weak_limit: int = Field(25, ge=1)
    priority: list[str] = Field(default_factory=lambda: list(ProtectionPolicy().priority))
    limit_one_attributes: list[str] = Field(default_factory=lambda: list(ProtectionPolicy().limit_one_attributes))
    max_merges: int = Field(100, ge=1)
    max_identifiers: int = Field(1000, ge=1)
    # Record entries per profile: a profile document must stay under Cosmos DB's 2 MB (bounds.py).
    max_records: int = Field(100, ge=1, le=MAX_RECORDS_LIMIT)
    # Values that identify nobody in this deployment (a store's walk-in email, its own phone), per identifier type:
    # normalized as records are, then treated as built-in placeholders are (protection.py).
    blocked_values: dict[str, list[str]] = Field(default_factory=dict)


class SurvivorshipConfig(_Strict):
    default_rule: Literal["most_recent", "source_priority", "most_complete"] = "most_recent"
    rules: dict[str, Literal["most_recent", "source_priority", "most_complete"]] = Field(default_factory=dict)
    source_priority: list[str] = Field(default_factory=list)


class NormalizationConfig(_Strict):
    # Gmail dots and the +tags of providers that deliver them to the base address folded (ann.lee+work@gmail.com is
    # annlee@gmail.com): in records' emails, blocked emails and lookups alike. False: each address as written.
    email_provider_rules: bool = True


class IdentityConfig(_Strict):
    normalization: NormalizationConfig = Field(default_factory=NormalizationConfig)
    protection: ProtectionConfig = Field(default_factory=ProtectionConfig)
    survivorship: SurvivorshipConfig = Field(default_factory=SurvivorshipConfig)
    blocking_cap: int = Field(50, ge=2, le=1000)
    max_candidates: int = Field(20, ge=1, le=200)

    def resolver_config(self) -> ResolverConfig:
        p, s = self.protection, self.survivorship
        limits = {k.strip().lower(): v for k, v in p.limits.items()}
        if any(v is not None and v < 1 for v in limits.values()):
            raise ValueError("protection.limits: a limit is at least 1 (or null for none)")
        if limits.get("source") is not None:
            raise ValueError("protection.limits: source has no limit (a profile holds one source key per record)")
        priority = [t.strip().lower() for t in p.priority]  # as limits' types are read
        if len(set(priority)) < len(priority):
            raise ValueError("protection.priority: a type is listed twice")
        unknown = sorted(set(p.limit_one_attributes) - LIMIT_ONE_ATTRIBUTES)
        if unknown:
            raise ValueError(f"protection.limit_one_attributes: {', '.join(unknown)} is not an attribute protection "
                             f"compares (one of {', '.join(sorted(LIMIT_ONE_ATTRIBUTES))})")
        provider_rules = self.normalization.email_provider_rules
        return ResolverConfig(
            protection=ProtectionPolicy(limits={"source": None, **limits}, default_limit=p.default_limit,
                                        weak_limit=p.weak_limit, priority=tuple(priority),
                                        limit_one_attributes=tuple(p.limit_one_attributes),
                                        max_merges=p.max_merges, max_identifiers=p.max_identifiers,
                                        max_records=p.max_records, blocked_values=p.blocked_values,
                                        email_provider_rules=provider_rules),
            survivorship=SurvivorshipPolicy(default_rule=s.default_rule, rules=dict(s.rules),
                                            source_priority=tuple(s.source_priority)),
            blocking_cap=self.blocking_cap, max_candidates=self.max_candidates, email_provider_rules=provider_rules)


class IdentityConfigError(ValueError):
    """The identity configuration file is missing or invalid; the message locates every error."""


def load_identity_config(path: str | Path | None = None) -> ResolverConfig:
    """The resolver configuration in this file (default: the shipped config/identity.json)."""
    return _load(str(Path(path) if path else DEFAULT_CONFIG_PATH))


@lru_cache(maxsize=8)
def _load(path: str) -> ResolverConfig:
    data = _read_json(path, "identity configuration", IdentityConfigError)
    try:
        return IdentityConfig.model_validate(data).resolver_config()
    except ValidationError as err:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors())
        raise IdentityConfigError(f"identity configuration {path}: {where}") from None
    except ValueError as err:
        raise IdentityConfigError(f"identity configuration {path}: {err}") from None


def _read_json(path: str, what: str, error: type[ValueError]) -> object:
    """The JSON in this file, or `error` saying which file (`what` it is) and why it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as err:
        raise error(f"{what} {path} cannot be read: {err.strerror or err}") from None
    except ValueError as err:
        raise error(f"{what} {path} is not valid JSON: {err}") from None


class MatchModelError(ValueError):
    """The match model file is missing or does not load; the message says which file and why."""


def load_match_model(path: str | Path | None = None, *, population: int | None = None) -> MatchModel:
    """The match model in this file (default: the shipped one), with its priors for a store of `population` records
    when given; each file loaded once per process (and scaled once per population)."""
    if population is not None:
        return _scaled_model(str(path) if path else "", population)
    return _load_model(str(path)) if path else MatchModel.default()


@lru_cache(maxsize=8)
def _scaled_model(path: str, population: int) -> MatchModel:
    try:
        return load_match_model(path or None).with_population(population)
    except ValueError as err:
        raise MatchModelError(f"match model {path or 'shipped'}: {err}") from None


@lru_cache(maxsize=8)
def _load_model(path: str) -> MatchModel:
    data = _read_json(path, "match model", MatchModelError)
    problem = _model_problem(data)
    if problem:
        raise MatchModelError(f"match model {path}: {problem}")
    try:
        return MatchModel.from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        raise MatchModelError(f"match model {path}: {err}") from None


# A distribution (class priors, a class's level probabilities) sums to 1 within this: ucp writes level probabilities
# rounded to 10 digits (sums within 4e-10 of 1), and one computed in single precision (about 1e-7) still loads.
SUM_TOLERANCE = 1e-6
# Term frequencies are shares of the records' names, rounded to 8 digits: a table of 5,000 names may sum a little
# over 1 (5,000 x 5e-9), not more.
TF_SUM_TOLERANCE = 1e-4


def _model_problem(data) -> str | None:
    """What keeps this JSON from being a model the resolver can score with (None: nothing), checked before
    MatchModel.from_dict so that a wrong shape or a number scoring cannot use is an error at start, not a wrong
    link (or a NaN score) later: the priors and each class's level probabilities are distributions (summing to 1,
    "null" at 0 as it contributes nothing), term frequencies are shares of records, and only the engine's
    comparisons appear."""
    if not isinstance(data, dict) or not {"lambdas", "comparisons"} & data.keys():
        return "not a match model (a JSON object with version, lambdas and comparisons, as ucp match-model writes)"
    if data.get("kind", "fellegi-sunter-3class") != "fellegi-sunter-3class":
        return f"kind {data['kind']!r}: this resolver scores with fellegi-sunter-3class models"
    if not isinstance(data.get("version"), str) or not data["version"]:
        return "no version"
    if data.get("classes", list(CLASSES)) != list(CLASSES):
        return f"classes {data['classes']!r}: {list(CLASSES)} expected, in this order (the priors follow it)"
    problem = _priors_problem(data.get("lambdas"))
    if problem:
        return problem
    population = data.get("population")
    if population is not None and (not isinstance(population, int) or isinstance(population, bool) or population < 2):
        return f"population {population!r}: the store size (records) the priors are set for, at least 2"
    comparisons = data.get("comparisons")
    if not isinstance(comparisons, dict):
        return "no comparisons"
    unknown = sorted(set(comparisons) - set(COMPARISONS))
    if unknown:
        return (f"comparison {', '.join(map(str, unknown))}: not one this resolver scores "
                f"({', '.join(COMPARISONS)})")
    for name, levels in COMPARISONS.items():
        spec = comparisons.get(name)
        if not isinstance(spec, dict):
            return f"comparison {name} is missing"
        if list(spec.get("levels") or []) != list(levels):
            return f"comparison {name} has levels {spec.get('levels')}, expected {list(levels)}"
        for cls in CLASSES:
            probs = spec.get(cls)
            if not _probabilities(probs, len(levels)):
                return f"comparison {name}: {len(levels)} probabilities between 0 and 1 expected for class {cls}"
            # A level at 0 ("never in this class") would be scored at 1e-12: one comparison worth 40 bits. ucp's fits
            # smooth every level above 0.
            if probs[0] != 0 or not _sums_to_one(probs[1:]) or 0 in probs[1:]:
                return (f"comparison {name}, class {cls}: level probabilities {probs} are no distribution (null 0, "
                        f"each other level above 0, together summing to 1; they sum to {sum(probs):.10g})")
    if not isinstance(data.get("metadata"), (dict, type(None))):
        return "metadata: a JSON object expected"
    return _term_frequencies_problem(data.get("term_frequencies"), data.get("tf_floor", 1e-5))  # as from_dict reads


def _priors_problem(lambdas) -> str | None:
    """The class priors (match, related, unrelated): a distribution; a match prior of 0 links nothing on score and an
    unrelated one of 0 has every pair related or one person. Related may be 0 (data without households)."""
    if not _probabilities(lambdas, len(CLASSES)):
        return f"lambdas: {len(CLASSES)} class priors between 0 and 1 expected"
    if not _sums_to_one(lambdas):
        return f"lambdas {lambdas}: the class priors sum to {sum(lambdas):.10g}, not 1"
    if lambdas[0] == 0 or lambdas[2] == 0:
        return f"lambdas {lambdas}: the match and unrelated priors must be above 0"
    return None


def _term_frequencies_problem(tables, floor) -> str | None:
    """Term frequencies: per name comparison (given_name, family_name), the share of records bearing each name, in
    [0, 1] (scoring floors them at tf_floor), together at most 1. tf_floor: the u probability of an exact name
    agreement on a rare name, a probability above 0 (a frequency of 0 is floored at it, and log2 needs it)."""
    if not _number(floor) or not 0 < floor <= 1:
        return f"tf_floor {floor!r}: a probability above 0 and at most 1 expected"
    if tables is None:
        return None
    if not isinstance(tables, dict):
        return f"term_frequencies: an object of {' and '.join(TF_COMPARISONS)} tables expected"
    for name, table in tables.items():
        if name not in TF_COMPARISONS:
            return f"term_frequencies.{name}: only {' and '.join(TF_COMPARISONS)} have term frequencies"
        if not isinstance(table, dict):
            return f"term_frequencies.{name}: an object of name: share of records expected"
        for value, share in table.items():
            if not _number(share) or not 0 <= share <= 1:
                return f"term_frequencies.{name}.{value}: {share!r} is no share of records (between 0 and 1)"
        if sum(table.values()) > 1 + TF_SUM_TOLERANCE:
            return f"term_frequencies.{name}: shares of records summing to {sum(table.values()):.10g}, above 1"
    return None


def _number(value) -> bool:
    """A finite JSON number (an int of 400 digits is one: not converted, as float() would overflow)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _sums_to_one(values) -> bool:
    return abs(math.fsum(values) - 1) <= SUM_TOLERANCE


def _probabilities(values, count: int) -> bool:
    return isinstance(values, list) and len(values) == count and all(_number(v) and 0 <= v <= 1 for v in values)
