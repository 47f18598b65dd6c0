"""``python -m sweeper.config``: print README's "Config reference" block, generated from the table."""

from .schema import reference

print(reference(), end="")
