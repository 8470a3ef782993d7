"""One query layer over sweeps and best configs, for ``cryotune status``/``best`` and the API.

``open_query(workspace=..., tracking_uri=...)`` picks the source: a workspace folder (records and
Optuna studies, live while a sweep runs) or an MLflow tracking store alone.
"""

from cryotune.query.service import Query, open_query

__all__ = ["Query", "open_query"]
