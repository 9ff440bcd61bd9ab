"""Check that a destination works: write, read back, list and delete a probe object.

``probe(store)`` is what ``validateDestination`` runs. It never raises for a storage failure: it
returns a ``ProbeReport`` naming the step that failed and the ``StorageError`` behind it, so the API
can answer "write failed: permission denied ..." rather than a bare error. Whatever happens, it tries
to delete the probe object it wrote, so a failed check leaves nothing behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from snapkeep.clock import SYSTEM, Clock
from snapkeep.errors import StorageError
from snapkeep.storage.base import Store

#: The steps in the order they run.
STEPS = ("write", "read", "list", "delete")
PROBE_PREFIX = "snapkeep-probe-"
PROBE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ProbeStep:
    """One step: its name, whether it passed, how long it took and, when it failed, why."""

    name: str
    ok: bool
    seconds: float
    error: StorageError | None = None


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """The outcome of ``probe``: ``ok``, the steps that ran and the first one that failed."""

    location: str
    steps: tuple[ProbeStep, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return len(self.steps) == len(STEPS) and all(step.ok for step in self.steps)

    @property
    def failed_step(self) -> str | None:
        return next((step.name for step in self.steps if not step.ok), None)

    @property
    def error(self) -> StorageError | None:
        return next((step.error for step in self.steps if step.error is not None), None)

    @property
    def message(self) -> str:
        """One line for a person: what worked, or which step failed and why."""
        failed = next((step for step in self.steps if not step.ok), None)
        if failed is None:
            return f"{self.location}: write, read, list and delete all work"
        return f"{self.location}: {failed.name} failed: {failed.error}"


def probe(store: Store, *, clock: Clock = SYSTEM, size: int = PROBE_SIZE) -> ProbeReport:
    """Write, read back, list and delete a random probe object of ``size`` bytes on ``store``.

    Stops at the first failing step. Returns a ``ProbeReport``; raises nothing for storage failures
    (errors other than ``StorageError`` are bugs and propagate).
    """
    name = PROBE_PREFIX + secrets.token_hex(8)
    payload = secrets.token_bytes(size)
    steps: list[ProbeStep] = []

    def read_back() -> None:
        data = store.load(name)
        if data != payload:
            raise StorageError(
                f"the probe object {name} read back as {len(data)} bytes that differ from the "
                f"{size} bytes written"
            )

    def listed() -> None:
        found = {item.name: item.size for item in store.list(PROBE_PREFIX)}
        if found.get(name) != size:
            seen = "missing" if name not in found else f"listed with size {found[name]}"
            raise StorageError(f"the probe object {name} was written but is {seen} in the listing")

    actions: dict[str, Callable[[], None]] = {
        "write": lambda: store.store(name, payload),
        "read": read_back,
        "list": listed,
        "delete": lambda: store.delete(name),
    }
    written = False
    try:
        for step in STEPS:
            started = clock.monotonic()
            try:
                actions[step]()
            except StorageError as error:
                steps.append(ProbeStep(step, False, clock.monotonic() - started, error))
                break
            steps.append(ProbeStep(step, True, clock.monotonic() - started))
            written = step != "delete"
    finally:
        if written:
            _remove_quietly(store, name)
    return ProbeReport(location=store.location, steps=tuple(steps))


def _remove_quietly(store: Store, name: str) -> None:
    """Delete the probe after a failed step; a failure here is secondary to the one reported."""
    try:
        store.delete(name, missing_ok=True)
    except StorageError:
        return
