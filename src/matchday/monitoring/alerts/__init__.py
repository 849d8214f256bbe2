"""Monitors (a metric, a window, a condition, actions), the alerts they raise and resolve, and the
webhooks that tell people: acting through hooks the wiring gives, never itself."""

from matchday.monitoring.alerts.alerting import AlertChange, AlertEngine, alert_body
from matchday.monitoring.alerts.monitors import (
    InvalidMonitor,
    MonitorSpec,
    Verdict,
    default_monitors,
    judge,
    monitors_for,
    parse_monitors,
)
from matchday.monitoring.alerts.webhooks import (
    InvalidWebhook,
    WebhookSender,
    validate_webhook_url,
)

__all__ = [
    "AlertChange",
    "AlertEngine",
    "InvalidMonitor",
    "InvalidWebhook",
    "MonitorSpec",
    "Verdict",
    "WebhookSender",
    "alert_body",
    "default_monitors",
    "judge",
    "monitors_for",
    "parse_monitors",
    "validate_webhook_url",
]
