"""Derived attributes, computed offline and stored apart from source attributes (profile["enrichment"])."""
from .derive import enrich_profile, run_enrichment

__all__ = ["enrich_profile", "run_enrichment"]
