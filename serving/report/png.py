"""The served version's ``report.png``, re-checked against its manifest's sha256 on every read."""

from __future__ import annotations

import hashlib

from serving.model import LoadedModel

REPORT_PNG = "report.png"


def read_report_png(model: LoadedModel) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, why not): the loaded version's report.png, checked against the
    manifest's sha256 again on every read (the path comes from the loaded model only)."""
    digest = (model.manifest.get("files") or {}).get(REPORT_PNG)
    if not isinstance(digest, str):
        return None, "the served version has no report.png"
    try:
        data = (model.path / REPORT_PNG).read_bytes()
    except OSError:
        return None, "report.png of the served version cannot be read"
    if hashlib.sha256(data).hexdigest() != digest.lower():
        return None, "report.png of the served version no longer matches its manifest checksum"
    return data, None
