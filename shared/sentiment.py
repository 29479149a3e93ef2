"""Sentiment of review and feedback text, offline: VADER's lexicon ships inside the vaderSentiment package."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment_score(text: str | None) -> float | None:
    """Compound polarity in [-1, 1] (negative to positive); None when there is no text to judge."""
    if not text or not text.strip():
        return None
    return round(_analyzer().polarity_scores(text[:5000])["compound"], 4)


def sentiment_label(score: float | None) -> str | None:
    if score is None:
        return None
    return "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"
