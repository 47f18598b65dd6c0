"""Hides credentials in URIs before anything prints, logs or records them. Stdlib only."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO_RE = re.compile(r"(//[^/:@\s]*:)[^@/\s]+@")


def redact_uri(uri: str) -> str:
    """``http://u:s3cret@host`` -> ``http://u:***@host``: URIs end up in logs and errors."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _USERINFO_RE.sub(r"\1***@", uri)
    if parts.password is None:
        return _USERINFO_RE.sub(r"\1***@", uri)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
