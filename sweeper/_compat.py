"""Every use of a private API of Optuna, MLflow or scikit-learn, in one place, each with its reason.

A private name can change in any release. Keeping each use here, behind a function with the
reason beside it, means one file to read when a library moves, and ``tests/test_compat.py``
calls every function here against the installed versions, so a broken one fails loudly there
rather than quietly in a sweep. Each function imports its library inside, so importing this
module costs nothing: stdlib only at module level.
"""

from __future__ import annotations

from typing import Any
