"""Run one stage of a sequential pipeline on its own thread, a few items ahead of the consumer.

Why: on two cores a frame's analysis is two stages that each take one core's time (detection ~7 ms, the three
models + tracking ~2.5 ms on a one-face clip), and OpenCV and TFLite release the GIL. Detecting frame n+1
while frame n is classified makes throughput the slower stage's rate instead of the sum of both. Order is
kept (the tracker and the region search need frames in order), and the producer runs at most `depth` items
ahead, so memory stays bounded on any video length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_DONE = object()
_PUT_SLICE_S = 0.05  # how often a blocked producer checks whether the consumer has gone
_JOIN_S = 5.0  # a worker stuck in a hung source is a daemon: the consumer does not wait for it forever


class _Failure:
    """An exception raised on the stage's thread, carried to the consumer and raised there."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def run_ahead(
    items: Iterable[Item], stage: Callable[[Item], Result], depth: int = 2, name: str = "facelens-stage"
) -> Iterator[tuple[Item, Result]]:
    """Yield `(item, stage(item))` in order, with `stage` applied on a worker thread up to `depth` items ahead.

    `items` is iterated (and, if it is a generator, closed) on the worker thread, so a generator's cleanup
    runs where it ran. An exception from `items` or `stage` is raised here, after the results before it.
    Leaving the loop early (break, an exception, `close()`) stops the worker and waits for it (at most
    a few seconds: a worker stuck in a hung source is a daemon thread)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    results: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: object) -> bool:
        while not stop.is_set():
            try:
                results.put(entry, timeout=_PUT_SLICE_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if stop.is_set() or not put((item, stage(item))):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failure(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            entry = results.get()
            if entry is _DONE:
                return
            if isinstance(entry, _Failure):
                raise entry.error
            yield entry  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(_JOIN_S)
