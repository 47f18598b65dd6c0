"""Every private-API use in ``sweeper/_compat.py`` works against the installed libraries.

One test per function there: when Optuna, MLflow or scikit-learn moves a private name, the
failure names the function and the library, here, not a puzzling error in a sweep.
"""

from __future__ import annotations

import inspect

from sweeper import _compat


def test_every_compat_function_has_a_test_here():
    functions = {name for name, obj in vars(_compat).items()
                 if inspect.isfunction(obj) and obj.__module__ == _compat.__name__ and not name.startswith("_")}
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert functions <= tested, f"untested: {sorted(functions - tested)}"
