"""The worker's sender threads, and the batching of what they record (no domain here).

`SenderPool` runs sends on DELIVERY_THREADS threads with back-pressure: when every thread is busy,
`submit` waits for one, so a claimed page never waits in a queue of its own. `Combiner` lets the
threads write their outcomes together: whichever thread finds nobody writing writes everything
waiting, in one transaction, while the others go back to sending. Alone, a thread writes its own
outcome at once (nothing waits for a batch to fill); in a burst, one commit records many pages.
"""

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class SenderPool:
    """The sender threads of one worker process."""

    def __init__(self, size: int):
        self._slots = threading.BoundedSemaphore(size)
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="openduty-send")
        self._busy = 0
        self._changed = threading.Condition()

    def submit(self, task: Callable[[], None], what: str) -> None:
        """Run `task` on a sender thread, waiting for a free one (`what` names it in the log)."""
        self._slots.acquire()
        with self._changed:
            self._busy += 1
        # In the submitter's context: the send logs under its job's request id (openduty.logs).
        self._executor.submit(contextvars.copy_context().run, self._run, task, what)

    def _run(self, task: Callable[[], None], what: str) -> None:
        try:
            task()
        except Exception:
            log.exception("Sending %s failed", what)
        finally:
            self._slots.release()
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no task runs; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._busy == 0, timeout)


class Combiner:
    """Items added by many threads, handled in batches by `handle`, one batch at a time.

    `add` hands its item over: if another thread is handling, that thread takes it (it stops only
    when it finds nothing waiting, under the same lock, so no item is left behind); otherwise this
    thread handles it and whatever else comes meanwhile. `handle` should not raise (an error is
    logged, and its batch is lost to this process: the rows it was to write stay as they were).
    """

    def __init__(self, handle: Callable[[list[Any]], None]):
        self._handle = handle
        self._lock = threading.Lock()
        self._waiting: list[Any] = []
        self._handling = False

    def add(self, item: Any) -> None:
        with self._lock:
            self._waiting.append(item)
            if self._handling:
                return  # the handling thread takes it
            self._handling = True
        while True:
            with self._lock:
                batch, self._waiting = self._waiting, []
                if not batch:
                    self._handling = False
                    return
            try:
                self._handle(batch)
            except Exception:
                log.exception("Handling %d item(s) failed", len(batch))
