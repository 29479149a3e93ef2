"""Generator parameters. Every rate is a probability per unit named in its comment; the manifest records them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

DEFAULT_END_DATE = date(2026, 9, 30)  # fixed, so a seed means the same bytes on any day


@dataclass(frozen=True)
class NoiseRates:
    """Per source customer record unless said otherwise."""

    typo: float = 0.06  # per name field (given, family): one insert/delete/substitute/transpose
    nickname: float = 0.12  # given name replaced by a nickname (when the name has one)
    case: float = 0.08  # a name field in upper/lower/swapped case
    whitespace: float = 0.05  # leading/trailing/double spaces in a field
    swap_names: float = 0.02  # given and family name swapped
    email_variant: float = 0.10  # case, plus-tag, gmail dots
    email_typo: float = 0.02
    street_abbreviation: float = 0.35  # Street -> St, Avenue -> Ave, straße -> str.
    street_typo: float = 0.03
    date_swap: float = 0.01  # birth date day and month swapped (when both <= 12)
    placeholder_email: float = 0.01  # test@test.com, none@none.com, N/A ...
    placeholder_phone: float = 0.01  # 0000000000, N/A ...
    placeholder_birth_date: float = 0.005  # 1900-01-01, 1970-01-01
    # Per person, over the history
    move: float = 0.15  # moved house (older records keep the old address)
    new_email: float = 0.15  # changed email (older records keep the old one)


@dataclass(frozen=True)
class HardNegatives:
    household_sizes: tuple[float, ...] = (0.50, 0.28, 0.12, 0.10)  # P(size 1..4) per household
    twins: float = 0.25  # per household of 4 (two adult children): the children are twins
    common_name: float = 0.02  # per person: one of the country's most common full names, in its biggest city
    shared_family_email: float = 0.15  # per household of >= 2: members sometimes give the family address
    home_phone: float = 0.5  # per household of >= 2: a landline members sometimes give instead of their mobile
    shared_device: float = 0.10  # per household of >= 2: a family computer several members log in on
    keep_family_name: float = 0.85  # per partner: takes/keeps the household's family name
    name_change: float = 0.25  # per partner who took the name: the marriage happened during the history


@dataclass(frozen=True)
class GeneratorConfig:
    customers: int = 1000
    seed: int = 0
    end_date: date = DEFAULT_END_DATE
    history_days: int = 730
    churn_window_days: int = 90
    malformed_rate: float = 0.005  # per written row of every landing file
    rows_per_file: int = 250_000  # landing files roll over to a new part after this many rows
    sources: dict[str, float] = field(default_factory=lambda: {"pos": 0.60, "ecommerce": 0.50, "loyalty": 0.35,
                                                                 "crm": 0.40})
    duplicate_rate: float = 0.04  # per person and source: a second account (re-registration)
    noise: NoiseRates = field(default_factory=NoiseRates)
    hard: HardNegatives = field(default_factory=HardNegatives)
    # Behaviour (per person): purchase rate ~ Gamma(shape, scale) per day; dropout after each purchase ~ Beta(a, b)
    purchase_rate_shape: float = 1.2
    purchase_rate_scale: float = 0.018
    dropout_a: float = 1.0
    dropout_b: float = 7.0
    return_rate: float = 0.07  # per purchase
    review_rate: float = 0.15  # per online order
    browse_sessions_per_year: float = 1.5  # mean, per ecommerce customer while active

    def __post_init__(self):
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if not 0 <= self.malformed_rate < 1:
            raise ValueError("malformed rate must be in [0, 1)")
        if self.churn_window_days < 1 or self.history_days < 30:
            raise ValueError("churn window must be >= 1 day and history >= 30 days")
        if self.rows_per_file < 1:
            raise ValueError("rows per file must be >= 1")
        unknown = set(self.sources) - {"pos", "ecommerce", "loyalty", "crm"}
        if unknown:
            raise ValueError(f"unknown sources: {sorted(unknown)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["end_date"] = self.end_date.isoformat()
        return d
