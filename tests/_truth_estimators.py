"""Estimators for tests/test_truth.py, importable by worker processes (``allow_imports``)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class SlowConstantClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the first class whatever its parameters: every configuration scores the same
    (ties on the best value), and ``delay`` makes trials finish in an order of its choosing."""

    def __init__(self, delay: float = 0.0, tag: str = "a") -> None:
        self.delay = delay
        self.tag = tag

    def fit(self, X, y):
        time.sleep(self.delay)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])
