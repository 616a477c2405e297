"""The served version's evaluation report as one HTML page (``GET /v1/model/report``).

No customer data: figures from the loaded version's manifest (test metrics
beside popularity, the ScaNN index's operating point, recall and cost, the
training curves per epoch, how the version was made) and its ``report.png``
inline, re-checked against the manifest's sha256 on every read.

- :mod:`serving.report.png`: reading the checked ``report.png``;
- :mod:`serving.report.page`: the page's figures from the manifest, rendered
  from the Jinja2 template ``templates/report.html.j2`` (autoescaped).
"""

from serving.report.page import REPORT_HEADERS, render_report
from serving.report.png import REPORT_PNG, read_report_png

__all__ = ["REPORT_HEADERS", "REPORT_PNG", "read_report_png", "render_report"]
