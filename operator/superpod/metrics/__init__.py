"""Metrics: the operator's Prometheus exporter, its alert and recording rules, and the Grafana dashboard.

The controller uses plain functions to time its work and count its failures (`observe_placement`,
`observe_reconcile`, `count_reconcile_error`, `observe_webhook`, `count_watch_restarts`) and starts an
`exporter.Exporter` whose collector takes a `snapshot.capture(fleet)` on every scrape. Modules: `snapshot` (what
is read), `collector` (gauges from a snapshot), `instruments` (histograms and counters), `exporter` (the /metrics
endpoint), `promql` (joins with NPU-Exporter series), `rules` (alerts and recording rules), `dashboard` (Grafana
JSON), `generate` (writes the chart's files), `render_dashboard` (a PNG of the dashboard from a Prometheus). See
docs/metrics.md.
"""

from superpod.metrics.instruments import (
    count_reconcile_error,
    count_watch_restarts,
    observe_placement,
    observe_reconcile,
    observe_webhook,
)

__all__ = [
    "count_reconcile_error",
    "count_watch_restarts",
    "observe_placement",
    "observe_reconcile",
    "observe_webhook",
]
