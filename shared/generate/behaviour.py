"""How each person shops: a BG/NBD-like process with seasonality, returns, web/mobile sessions and reviews.

Each person has a latent purchase rate (Gamma) and, after every purchase, a latent chance of dropping out for
good (Beta). Purchases are simulated past the end of the data into a hidden future window; churned = no purchase
in that window. Only the part up to the end of the history is written.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from . import banks
from .config import GeneratorConfig


class Clock:
    """Times are float days since the start of the history; formatting uses per-day lookup tables (fast)."""

    def __init__(self, cfg: GeneratorConfig):
        self.start = cfg.end_date - timedelta(days=cfg.history_days - 1)
        self.history = float(cfg.history_days)  # observed: 0 <= t < history
        self.horizon = self.history + cfg.churn_window_days
        self.offset = 800  # days before the start covered by the tables
        n = self.offset + int(self.horizon) + 2
        self.dates = [self.start + timedelta(days=d - self.offset) for d in range(n)]
        self._tables: dict[str, list[str]] = {}
        self.season = [_season_factor(d) for d in self.dates]
        self.season_max = max(self.season)
        self._iso_days = [d.isoformat() for d in self.dates]

    def date(self, t: float) -> date:
        return self.dates[int(math.floor(t)) + self.offset]

    def day_string(self, t: float, fmt: str) -> str:
        table = self._tables.get(fmt)
        if table is None:
            table = self._tables[fmt] = [d.strftime(fmt) for d in self.dates]
        return table[int(math.floor(t)) + self.offset]

    def iso(self, t: float) -> str:
        """2026-01-31T18:04:05Z"""
        day = math.floor(t)
        secs = int((t - day) * 86400)
        return f"{self._iso_days[int(day) + self.offset]}T{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}Z"

    def format(self, t: float, day_fmt: str, time_fmt: str = "{h:02d}:{m:02d}:{s:02d}", sep: str = " ") -> str:
        h, m, s = _hms(t)
        return f"{self.day_string(t, day_fmt)}{sep}{time_fmt.format(h=h, m=m, s=s)}"

    def season_at(self, t: float) -> float:
        return self.season[int(math.floor(t)) + self.offset]


def _hms(t: float) -> tuple[int, int, int]:
    secs = int((t - math.floor(t)) * 86400)
    return secs // 3600, secs // 60 % 60, secs % 60


def _season_factor(d: date) -> float:
    """December peak, Black Friday spike, a small summer sale."""
    doy = d.timetuple().tm_yday
    return (1.0 + 1.2 * math.exp(-(((doy - 350) / 14.0) ** 2)) + 0.6 * math.exp(-(((doy - 331) / 3.0) ** 2))
            + 0.2 * math.exp(-(((doy - 190) / 12.0) ** 2)))


@dataclass(slots=True)
class Item:
    sku: str
    category: str
    quantity: int
    price: float


@dataclass(slots=True)
class Purchase:
    t: float
    channel: str  # store | web | mobile
    items: list[Item]
    amount: float
    returned_at: float | None = None
    return_amount: float = 0.0
    return_kind: str = "return"


@dataclass(slots=True)
class Shopper:
    """A person's latent behaviour and what it produced."""

    rate: float
    dropout: float
    basket_scale: float
    favourites: tuple[str, ...]
    online_share: float
    has_app: bool
    purchases: list[Purchase] = field(default_factory=list)  # observed (0 <= t < history), oldest first
    future_purchases: int = 0  # in the hidden window after the end (never written)
    dropped_at: float | None = None

    @property
    def churned(self) -> bool:
        return self.future_purchases == 0


def simulate_shopper(rng: random.Random, acquired_at: float, clock: Clock, cfg: GeneratorConfig, *,
                     in_store: bool, online: bool) -> Shopper:
    rate = min(0.3, max(1e-4, rng.gammavariate(cfg.purchase_rate_shape, cfg.purchase_rate_scale)))
    shopper = Shopper(
        rate=rate, dropout=rng.betavariate(cfg.dropout_a, cfg.dropout_b),
        basket_scale=rng.lognormvariate(0.0, 0.35),
        favourites=_three_categories(rng),
        online_share=(rng.betavariate(2, 2) if in_store and online else (1.0 if online else 0.0)),
        has_app=online and rng.random() < 0.4)
    t = acquired_at
    for _ in range(500):  # cap: a pathological rate cannot blow up one person
        if t >= clock.history:
            shopper.future_purchases += 1
        elif t >= 0:
            shopper.purchases.append(_purchase(rng, t, shopper, clock, cfg))
        if rng.random() < shopper.dropout:
            shopper.dropped_at = t
            break
        t = _next_purchase(rng, t, rate, clock)
        if t >= clock.horizon:
            break
    return shopper


def _next_purchase(rng: random.Random, t: float, rate: float, clock: Clock) -> float:
    """Thinning: candidate gaps at the peak rate, kept with probability season(t) / peak."""
    peak = rate * clock.season_max
    while True:
        t += rng.expovariate(peak)
        if t >= clock.horizon or rng.random() * clock.season_max < clock.season_at(t):
            return t


def _purchase(rng: random.Random, t: float, shopper: Shopper, clock: Clock, cfg: GeneratorConfig) -> Purchase:
    online = rng.random() < shopper.online_share
    channel = ("mobile" if shopper.has_app and rng.random() < 0.6 else "web") if online else "store"
    hour = (9 + rng.random() * 12) if channel == "store" else (7 + rng.random() * 16.9)
    t = math.floor(t) + hour / 24
    items = []
    for _ in range(1 + min(int(rng.expovariate(1.1)), 4)):
        cat = shopper.favourites[int(rng.random() * 3)] if rng.random() < 0.7 else banks.CATEGORIES[int(rng.random() * 10)]
        price = round(banks.CATEGORY_PRICE[cat] * shopper.basket_scale * rng.lognormvariate(0, 0.45), 2)
        items.append(Item(sku=f"{cat[:3].upper()}-{1000 + int(rng.random() * 9000)}", category=cat,
                          quantity=1 if rng.random() < 0.85 else 2, price=max(price, 0.99)))
    purchase = Purchase(t=t, channel=channel, items=items, amount=round(sum(i.price * i.quantity for i in items), 2))
    if rng.random() < cfg.return_rate:
        returned = t + rng.uniform(1, 30)
        if returned < clock.history:
            item = items[int(rng.random() * len(items))]
            purchase.returned_at = returned
            purchase.return_amount = round(item.price * item.quantity, 2)
            purchase.return_kind = "return" if channel == "store" or rng.random() < 0.5 else "refund"
    return purchase


def _three_categories(rng: random.Random) -> tuple[str, ...]:
    cats = list(banks.CATEGORIES)
    for i in range(3):  # partial Fisher-Yates
        j = i + int(rng.random() * (len(cats) - i))
        cats[i], cats[j] = cats[j], cats[i]
    return tuple(cats[:3])


# ---------------------------------------------------------------- reviews

_RATING_CUM = (0.08, 0.15, 0.27, 0.55, 1.0)  # P(rating <= 1..5)
_BUCKETS = ("negative", "negative", "neutral", "positive", "positive")


def review_of(rng: random.Random, returned: bool) -> tuple[int, str, str]:
    """(rating, title, text): the text's sentiment follows the rating, except sometimes (noise)."""
    u = rng.random()
    rating = 1 + next(i for i, c in enumerate(_RATING_CUM) if u <= c)
    if returned and rating > 2 and rng.random() < 0.5:
        rating -= 2
    bucket = _BUCKETS[rating - 1]
    if rng.random() < 0.15:  # sarcasm, a complaint about delivery in a 5-star review, ...
        bucket = ("negative", "neutral", "positive")[int(rng.random() * 3)]
    phrases = banks.REVIEW_PHRASES[bucket]
    text = " ".join(phrases[int(rng.random() * len(phrases))] for _ in range(1 + int(rng.random() * 2)))
    title = phrases[int(rng.random() * len(phrases))].split(",")[0].rstrip(".!")
    return rating, title, text
