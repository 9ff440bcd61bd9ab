"""A caller's chunks for a streamed write, told apart from the backend's own failures.

A remote store that loses its connection half-way through ``store_stream`` may try the write once
more, but only when the chunks can be produced again (a sequence, or an iterator nothing was taken
from yet). An exception raised by the caller's iterator is wrapped in ``SourceFailure`` so that the
backend does not take it for a network error, and is re-raised unchanged to the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


class SourceFailure(Exception):
    """Wraps an exception raised by the caller's chunk iterator."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


class Chunks:
    """The caller's chunks; tells whether a failed write may be tried again from the start."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._replayable = isinstance(chunks, Sequence)
        self.started = False

    def can_replay(self) -> bool:
        return self._replayable or not self.started

    def __iter__(self) -> Iterator[bytes]:
        self.started = True
        iterator = iter(self._chunks)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                raise SourceFailure(error) from error
            yield chunk
