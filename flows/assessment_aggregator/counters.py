"""Sunbird's counter names of assessment-aggregator (docs/flows/assessment-aggregator.md#12-metrics).

Every rule result lists the counters it adds (``counters``); they are Sunbird's names, kept so
a run can be compared with Sunbird's job, and are not Prometheus metrics.
"""

from __future__ import annotations

from enum import StrEnum


class Metric(StrEnum):
    """Sunbird's counter names, listed in the ``counters`` of each result.

    See docs/flows/assessment-aggregator.md#12-metrics.
    """

    CACHE_HIT = "cache-hit-count"
    CACHE_MISS = "cache-hit-miss-count"
    DB_READ = "db-read-count"
    DB_UPDATE = "db-update-count"
    BATCH_SUCCESS = "batch-success-event-count"
    SKIPPED = "skipped-event-count"
    FAILED = "failed-event-count"
    IGNORED = "ignored-event-count"
    RECOMPUTE = "recompute-agg-event-count"
    API_SUCCESS = "api-hit-success-count"
    API_FAILED = "api-hit-failed-count"
    DB_SCORE_READ = "db-score-read-count"
    DB_SCORE_UPDATE = "db-score-update-count"
    CERT_ISSUED = "cert-issue-events-count"
