"""Notifications: an e-mail through SMTP and a webhook POST for each alert of the chosen levels.

Interface (for the runner and the daemon, after the transaction that raised the alerts commits)
-------------------------------------------------------------------------------------------
``notify(catalog, alerts) -> list[Delivery]``
    loads the channels (``jobs.settings.notification``) and sends every alert to every channel that
    wants its level. Never raises: a failed notification (or unreadable settings) is logged and
    reported as a ``Delivery`` with ``ok=False`` and the reason, which the runner may copy into the
    run's log.
``send(settings, alerts)``, ``send_email(settings, alert)``, ``send_webhook(settings, alert)``
    the sending itself, for channels already loaded.

The channels are settings (``jobs.settings``: ``EmailSettings``, ``WebhookSettings``), set through
``manageSettingsNotification`` or ``snapkeep settings set notification.*``. The e-mail subject is
``[snapkeep <level>] <title>``. The webhook body is a JSON object: the alert's API fields plus
``level_name`` and ``server`` (this host's name).
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from snapkeep.errors import SnapkeepError
from snapkeep.jobs.alerts import Alert
from snapkeep.jobs.catalog import Catalog
from snapkeep.jobs.settings import EmailSettings, Notification, WebhookSettings, notification

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One notification attempt."""

    channel: str
    alert_id: str
    ok: bool
    error: str = ""


def _payload(alert: Alert) -> dict[str, Any]:
    return {**alert.as_api(), "level_name": alert.level_name, "server": socket.gethostname()}


def send_email(settings: EmailSettings, alert: Alert) -> None:
    """Send one alert by e-mail. Raises the SMTP or socket error (``notify`` catches it)."""
    message = EmailMessage()
    message["Subject"] = f"[snapkeep {alert.level_name}] {alert.title}"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    payload = _payload(alert)
    message.set_content(
        f"{alert.message}\n\nlevel: {alert.level_name}\ntime: {payload['created']}\n"
        f"server: {payload['server']}\nalert: {alert.id}\n"
    )
    smtp_class = smtplib.SMTP_SSL if settings.security == "ssl" else smtplib.SMTP
    with smtp_class(settings.host, settings.port, timeout=settings.timeout) as client:
        if settings.security == "starttls":
            client.starttls()
        if settings.username:
            client.login(settings.username, settings.password.get_secret_value())
        client.send_message(message)


def send_webhook(settings: WebhookSettings, alert: Alert) -> None:
    """POST one alert as JSON. Raises OSError (urllib errors included) or SnapkeepError for a non-2xx
    answer (``notify`` catches both)."""
    body = json.dumps(_payload(alert)).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, see below
        settings.url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "snapkeep"},
    )
    # the URL is http(s) only: settings.WebhookSettings refuses other schemes when it is saved
    with urllib.request.urlopen(request, timeout=settings.timeout) as answer:  # noqa: S310
        if not 200 <= answer.status < 300:
            raise SnapkeepError(f"the webhook answered HTTP {answer.status}")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"the webhook answered HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot reach the webhook: {error.reason}"
    return f"{type(error).__name__}: {error}" if not isinstance(error, SnapkeepError) else str(error)


def send(settings: Notification, alerts: Iterable[Alert]) -> list[Delivery]:
    """Send every alert to every enabled channel that wants its level. Never raises."""
    deliveries: list[Delivery] = []
    channels: list[tuple[str, Any, Any]] = []
    if settings.email is not None and settings.email.enabled:
        channels.append(("email", settings.email, send_email))
    if settings.webhook is not None and settings.webhook.enabled:
        channels.append(("webhook", settings.webhook, send_webhook))
    for alert in alerts:
        for channel, options, sender in channels:
            if alert.level not in options.levels:
                continue
            try:
                sender(options, alert)
            except Exception as error:  # noqa: BLE001 - any failure of a notification must not reach the run
                reason = _reason(error)
                log.warning("alert %s: %s notification failed: %s", alert.id, channel, reason)
                deliveries.append(Delivery(channel, alert.id, False, reason))
            else:
                deliveries.append(Delivery(channel, alert.id, True))
    return deliveries


def notify(catalog: Catalog, alerts: Iterable[Alert]) -> list[Delivery]:
    """Load the settings and send ``alerts``. Never raises."""
    alerts = list(alerts)
    if not alerts:
        return []
    try:
        with catalog.transaction(write=False) as tx:
            settings = notification(tx)
    except SnapkeepError as error:
        log.warning("notifications not sent: cannot read their settings: %s", error)
        return [Delivery("settings", alert.id, False, str(error)) for alert in alerts]
    return send(settings, alerts)
