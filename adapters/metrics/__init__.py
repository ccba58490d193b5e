"""Metrics sources (guide 6.3, the "Tool" column): ``PrometheusMetrics`` (HTTP API, httpx) and
``CloudWatchMetrics`` (boto3 ``GetMetricData``), behind the ``Metrics`` protocol of ``adapters.metrics.base``.

May import adapters' interfaces, models and errors, httpx and boto3; never bot or commands.
"""
