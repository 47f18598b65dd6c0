"""The built-in objective: a scikit-learn estimator scored by cross-validation, and how its
arguments come from a config."""
