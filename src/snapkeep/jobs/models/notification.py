"""The notification channels' models (``jobs.settings`` stores them under ``notify.email`` and
``notify.webhook``): what ``manageSettingsNotification`` validates, what ``jobs.notify`` sends with."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from snapkeep.jobs.codes import AlertLevel
from snapkeep.jobs.models.base import Flag, Strict, choice, integer, listish, shown

SECURITY = ("none", "starttls", "ssl")


def _commas(value: Any) -> Any:
    """A list, a single value, or one text with several values separated by commas."""
    if isinstance(value, str) and "," in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    return listish(value)


Level = Annotated[int, choice(AlertLevel.labels())]
Levels = Annotated[list[Level], BeforeValidator(_commas)]
Seconds = Annotated[int, integer(1, 300)]


class EmailSettings(Strict):
    enabled: Flag = Field(True, description="send e-mail notifications")
    host: str = Field(min_length=1, description="SMTP server")
    port: Annotated[int, integer(1, 65535)] = Field(25, description="SMTP port")
    security: str = Field("none", description="none, starttls or ssl")
    username: str = Field("", description="SMTP login (empty: no login)")
    password: SecretStr = Field(SecretStr(""), description="SMTP password (secret)")
    sender: str = Field(min_length=3, description="From address")
    recipients: Annotated[list[str], BeforeValidator(_commas)] = Field(
        min_length=1, description="To addresses"
    )
    levels: Levels = Field(default_factory=lambda: [2, 3], description="alert levels to send")
    timeout: Seconds = Field(10, description="seconds to wait for the server")

    @field_validator("security")
    @classmethod
    def _security(cls, value: str) -> str:
        if value not in SECURITY:
            raise PydanticCustomError(
                "security", "must be none, starttls or ssl (got {got})", {"got": shown(value)}
            )
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
            raise PydanticCustomError(
                "url", "must start with http:// or https:// (got {got})", {"got": shown(value)}
            )
        return value
