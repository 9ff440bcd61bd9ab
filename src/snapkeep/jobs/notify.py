"""Notifications: an e-mail through SMTP and a webhook POST for each alert of the chosen levels.

Interface (for the runner and the daemon, after the transaction that raised the alerts commits)
-------------------------------------------------------------------------------------------
``notify(catalog, alerts) -> list[Delivery]``
    loads the settings and sends every alert to every channel that wants its level. Never raises: a
    failed notification (or unreadable settings) is logged and reported as a ``Delivery`` with
    ``ok=False`` and the reason, which the runner may copy into the run's log.
``load_settings(tx)`` / ``save_settings(tx, email=..., webhook=...)``
    the channels, stored in the catalog's settings table under ``notify.email`` and ``notify.webhook``.
    ``save_settings`` validates (ValidationError naming ``email[host]`` etc.); ``None`` leaves a channel
    as it is, ``{}`` removes it.

E-mail settings: ``host``, ``port`` (25), ``security`` (``none``, ``starttls``, ``ssl``), ``username``,
``password``, ``sender``, ``recipients[]``, ``levels[]`` (default 2, 3), ``timeout`` (10 s), ``enabled``.
Webhook settings: ``url`` (http or https), ``levels[]``, ``timeout``, ``enabled``. The webhook body is a
JSON object: the alert's API fields plus ``level_name`` and ``server`` (this host's name).
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
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from sqlalchemy import delete, select

from snapkeep.errors import SnapkeepError
from snapkeep.jobs.alerts import Alert
from snapkeep.jobs.catalog import Catalog, Transaction
from snapkeep.jobs.codes import AlertLevel
from snapkeep.jobs.migrations import schema
from snapkeep.jobs.models.base import Flag, Strict, choice, integer, listish, validate

log = logging.getLogger(__name__)

EMAIL_KEY, WEBHOOK_KEY = "notify.email", "notify.webhook"
SECURITY = ("none", "starttls", "ssl")
Level = Annotated[int, choice(AlertLevel.labels())]
Levels = Annotated[list[Level], BeforeValidator(listish)]
Seconds = Annotated[int, integer(1, 300)]


class EmailSettings(Strict):
    enabled: Flag = Field(True, description="send e-mail notifications")
    host: str = Field(min_length=1, description="SMTP server")
    port: Annotated[int, integer(1, 65535)] = Field(25, description="SMTP port")
    security: str = Field("none", description="none, starttls or ssl")
    username: str = Field("", description="SMTP login (empty: no login)")
    password: SecretStr = Field(SecretStr(""), description="SMTP password")
    sender: str = Field(min_length=3, description="From address")
    recipients: Annotated[list[str], BeforeValidator(listish)] = Field(
        min_length=1, description="To addresses"
    )
    levels: Levels = Field(default_factory=lambda: [2, 3], description="alert levels to send")
    timeout: Seconds = Field(10, description="seconds to wait for the server")

    @field_validator("security")
    @classmethod
    def _security(cls, value: str) -> str:
        if value not in SECURITY:
            raise ValueError(f"must be none, starttls or ssl (got {value!r})")
        return value


class WebhookSettings(Strict):
    enabled: Flag = Field(True, description="send webhook notifications")
    url: str = Field(description="http:// or https:// URL to POST each alert to")
    levels: Levels = Field(default_factory=lambda: [2, 3], description="alert levels to send")
    timeout: Seconds = Field(10, description="seconds to wait for the server")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value[:60]!r})")
        return value


@dataclass(frozen=True)
class NotifySettings:
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None


@dataclass(frozen=True)
class Delivery:
    """One notification attempt."""

    channel: str
    alert_id: str
    ok: bool
    error: str = ""


def _read(tx: Transaction, key: str) -> Any:
    table = schema.settings
    return tx.connection.execute(select(table.c.value).where(table.c.key == key)).scalar_one_or_none()


def _write(tx: Transaction, key: str, value: dict[str, Any] | None) -> None:
    table = schema.settings
    tx.connection.execute(delete(table).where(table.c.key == key))
    if value is not None:
        tx.connection.execute(table.insert().values(key=key, value=value))


def _stored(model: EmailSettings | WebhookSettings) -> dict[str, Any]:
    document = model.model_dump()
    if isinstance(model, EmailSettings):
        document["password"] = model.password.get_secret_value()
    return document


def load_settings(tx: Transaction) -> NotifySettings:
    """The notification channels. Raises ValidationError when a stored setting is no longer valid."""
    email, webhook = _read(tx, EMAIL_KEY), _read(tx, WEBHOOK_KEY)
    return NotifySettings(
        email=validate(EmailSettings, email, prefix="email") if email else None,
        webhook=validate(WebhookSettings, webhook, prefix="webhook") if webhook else None,
    )


def save_settings(
    tx: Transaction, *, email: dict[str, Any] | None = None, webhook: dict[str, Any] | None = None
) -> NotifySettings:
    """Validate and store channels (``{}`` removes one, None keeps it). Raises ValidationError."""
    if email is not None:
        _write(tx, EMAIL_KEY, _stored(validate(EmailSettings, email, prefix="email")) if email else None)
    if webhook is not None:
        model = validate(WebhookSettings, webhook, prefix="webhook") if webhook else None
        _write(tx, WEBHOOK_KEY, _stored(model) if model else None)
    return load_settings(tx)


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
    request = urllib.request.Request(
        settings.url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "snapkeep"},
    )
    with urllib.request.urlopen(request, timeout=settings.timeout) as answer:
        if not 200 <= answer.status < 300:
            raise SnapkeepError(f"the webhook answered HTTP {answer.status}")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"the webhook answered HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot reach the webhook: {error.reason}"
    return f"{type(error).__name__}: {error}" if not isinstance(error, SnapkeepError) else str(error)


def send(settings: NotifySettings, alerts: Iterable[Alert]) -> list[Delivery]:
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
            except Exception as error:  # any failure of a notification must not reach the run
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
            settings = load_settings(tx)
    except SnapkeepError as error:
        log.warning("notifications not sent: cannot read their settings: %s", error)
        return [Delivery("settings", alert.id, False, str(error)) for alert in alerts]
    return send(settings, alerts)
