"""``python -m sweeper``.

``python -m`` puts the working directory first on ``sys.path``; a ``yaml.py`` or an
``sklearn/`` there would then run as the library. The console script ``sweeper`` has no such
entry, and neither has this: user code a config names is found at the end of the path instead
(``sweeper.sweep.extend_import_path``).
"""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from .cli import main  # noqa: E402 - after the path is safe

if __name__ == "__main__":
    raise SystemExit(main())
