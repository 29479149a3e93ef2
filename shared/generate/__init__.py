"""Realistic multi-source retail data with ground truth (`ucp generate`; layout in run.py).

    from shared.generate import GeneratorConfig, generate, load_truth_records, load_churn, load_people
    manifest = generate("out/", GeneratorConfig(customers=10_000, seed=7), progress=False, workers=1)
    truth = load_truth_records("out/")      # {"pos|C123...": "P00000042", ...} for every customer record
    churn = load_churn("out/")              # {"P00000042": {"churned": 0/1, "last_purchase", "as_of", ...}}

`FILE_SPECS["<source>.<entity>"]` describes each landing file (columns, format, delimiter, encoding);
config/sources/<source>.<entity>.json are the matching ingestion mappings. The behaviour model
(`behaviour.Clock`, `behaviour.simulate_shopper`) can be used on its own for purchase histories.
"""
from __future__ import annotations

from .config import DEFAULT_END_DATE, GeneratorConfig, HardNegatives, NoiseRates
from .run import Generator, generate
from .sources import FILE_SPECS, SOURCES
from .truth import load_churn, load_people, load_truth_records

__all__ = ["DEFAULT_END_DATE", "FILE_SPECS", "SOURCES", "Generator", "GeneratorConfig", "HardNegatives",
           "NoiseRates", "generate", "load_churn", "load_people", "load_truth_records"]
