"""Account providers: where the accounts of an Accounts job come from.

``open_provider("inventory", path=...)`` or ``open_provider("linux", ...)`` returns an
``AccountProvider`` (``list_accounts()``, ``get_account(username)``); see ``base``.
"""

from __future__ import annotations

from typing import Any

from snapkeep.errors import ConfigError
from snapkeep.sources.accounts.base import Account, AccountProvider
from snapkeep.sources.accounts.inventory import InventoryProvider
from snapkeep.sources.accounts.linux import LinuxOptions, LinuxProvider

__all__ = ["Account", "AccountProvider", "InventoryProvider", "LinuxProvider", "open_provider"]


def open_provider(kind: str, **options: Any) -> AccountProvider:
    """The provider named ``kind``: ``inventory`` (``path=`` the TOML file) or ``linux``
    (``LinuxOptions`` fields, ``settings=`` a ``DatabaseSettings``). Raises ``ConfigError``."""
    if kind == "inventory":
        if not options.get("path"):
            raise ConfigError("accounts.inventory: the inventory provider needs a path")
        return InventoryProvider(options["path"], measure=bool(options.get("measure", True)))
    if kind == "linux":
        settings = options.pop("settings", None)
        try:
            linux_options = LinuxOptions(**options)
        except TypeError as error:
            raise ConfigError(f"accounts.linux: {error}") from None
        return LinuxProvider(linux_options, settings=settings)
    raise ConfigError(f"accounts.provider: unknown account provider {kind!r} (inventory or linux)")
