"""Churn prediction: features (one definition for training and serving), the model registry and ONNX serving.

Training lives in model_training.churn (scikit-learn); this package needs only numpy and onnxruntime.
"""
from .features import FEATURE_NAMES, History, compute_features
from .registry import ModelRegistry, RegistryConflict, RegistryError, blob_registry, local_registry
from .serving import ChurnModel, ChurnScorer, ModelNotAvailable, default_scorer, risk_level, score_profile

__all__ = [
    "FEATURE_NAMES", "History", "compute_features",
    "ModelRegistry", "RegistryConflict", "RegistryError", "blob_registry", "local_registry",
    "ChurnModel", "ChurnScorer", "ModelNotAvailable", "default_scorer", "risk_level", "score_profile",
]
