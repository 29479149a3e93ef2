"""Realistic multi-source retail data with ground truth (see run.py for the layout it writes).

    from shared.generate import GeneratorConfig, generate, load_truth_records, load_churn
    manifest = generate("out/", GeneratorConfig(customers=10_000, seed=7))
"""
from __future__ import annotations

from .config import DEFAULT_END_DATE, GeneratorConfig, HardNegatives, NoiseRates
from .run import Generator, generate
from .sources import FILE_SPECS, SOURCES
from .truth import load_churn, load_people, load_truth_records

__all__ = ["DEFAULT_END_DATE", "FILE_SPECS", "SOURCES", "Generator", "GeneratorConfig", "HardNegatives",
           "NoiseRates", "generate", "load_churn", "load_people", "load_truth_records"]
