"""The resolver's rules as a deployment sets them: merge protection, survivorship and candidate limits, from a
JSON file (`config/identity.json`, shipped with the defaults; UCP_IDENTITY_CONFIG points at another).

Match and review thresholds are settings of their own (UCP_MATCH_THRESHOLD, UCP_REVIEW_THRESHOLD). A file that
does not validate stops the resolver with every error located, rather than resolving with rules nobody chose.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .docs import ResolverConfig
from .protection import MAX_RECORDS_LIMIT, ProtectionPolicy
from .survivorship import SurvivorshipPolicy

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "identity.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProtectionConfig(_Strict):
    limits: dict[str, int | None] = Field(default_factory=lambda: dict(ProtectionPolicy().limits))
    default_limit: int = Field(5, ge=1)
    weak_limit: int = Field(25, ge=1)
    priority: list[str] = Field(default_factory=lambda: list(ProtectionPolicy().priority))
    limit_one_attributes: list[str] = Field(default_factory=lambda: ["birth_date"])
    max_merges: int = Field(100, ge=1)
    max_identifiers: int = Field(1000, ge=1)
    # Record entries per profile: a profile document must stay under Cosmos DB's 2 MB (bounds.py).
    max_records: int = Field(100, ge=1, le=MAX_RECORDS_LIMIT)


class SurvivorshipConfig(_Strict):
    default_rule: Literal["most_recent", "source_priority", "most_complete"] = "most_recent"
    rules: dict[str, Literal["most_recent", "source_priority", "most_complete"]] = Field(default_factory=dict)
    source_priority: list[str] = Field(default_factory=list)


class IdentityConfig(_Strict):
    protection: ProtectionConfig = Field(default_factory=ProtectionConfig)
    survivorship: SurvivorshipConfig = Field(default_factory=SurvivorshipConfig)
    blocking_cap: int = Field(50, ge=2, le=1000)
    max_candidates: int = Field(20, ge=1, le=200)

    def resolver_config(self) -> ResolverConfig:
        p, s = self.protection, self.survivorship
        limits = {"source": None, **{k.strip().lower(): v for k, v in p.limits.items()}}
        if any(v is not None and v < 1 for v in limits.values()):
            raise ValueError("protection.limits: a limit is at least 1 (or null for none)")
        return ResolverConfig(
            protection=ProtectionPolicy(limits=limits, default_limit=p.default_limit, weak_limit=p.weak_limit,
                                        priority=tuple(p.priority), limit_one_attributes=tuple(p.limit_one_attributes),
                                        max_merges=p.max_merges, max_identifiers=p.max_identifiers,
                                        max_records=p.max_records),
            survivorship=SurvivorshipPolicy(default_rule=s.default_rule, rules=dict(s.rules),
                                            source_priority=tuple(s.source_priority)),
            blocking_cap=self.blocking_cap, max_candidates=self.max_candidates)


class IdentityConfigError(ValueError):
    """The identity configuration file is missing or invalid; the message locates every error."""


def load_identity_config(path: str | Path | None = None) -> ResolverConfig:
    """The resolver configuration in this file (default: the shipped config/identity.json)."""
    return _load(str(Path(path) if path else DEFAULT_CONFIG_PATH))


@lru_cache(maxsize=8)
def _load(path: str) -> ResolverConfig:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IdentityConfigError(f"identity configuration {path} does not exist") from None
    except ValueError as err:
        raise IdentityConfigError(f"identity configuration {path} is not valid JSON: {err}") from None
    try:
        return IdentityConfig.model_validate(data).resolver_config()
    except ValidationError as err:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in err.errors())
        raise IdentityConfigError(f"identity configuration {path}: {where}") from None
    except ValueError as err:
        raise IdentityConfigError(f"identity configuration {path}: {err}") from None
