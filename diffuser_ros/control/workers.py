"""``PlanningWorkers``: the threads that run the planning cycle, one planner each (rclpy-free).

One worker plans at a time on its own copy of the model; with ``plans_in_flight`` K, K workers
take the newest state as soon as they are free. A failed plan is logged and the worker goes on:
the controller must survive it (the safe action has gone out).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence


class PlanningWorkers:
    """``run_once(timeout=, planner=)`` in a loop on ``count`` threads until :meth:`stop`."""

    def __init__(self, run_once: Callable, planners: Sequence,
                 log: Callable[[int, str], None], wake: Callable[[], None]) -> None:
        self._run_once, self._planners, self._log, self._wake = run_once, planners, log, wake
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def start(self, count: int) -> None:
        """Start ``count`` workers (idempotent); ``ValueError`` when there are fewer planners."""
        if any(thread.is_alive() for thread in self._threads):
            return
        if count > len(self._planners):
            raise ValueError(f"plans_in_flight {count} needs {count} planners, "
                             f"got {len(self._planners)}")
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, args=(planner,), daemon=True,
                                          name=f"diffusion_planner_{i}")
                         for i, planner in enumerate(self._planners[:count])]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the workers after the plans in flight (if any)."""
        self._stop.set()
        self._wake()
        threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _run(self, planner) -> None:
        while not self._stop.is_set():
            try:
                self._run_once(timeout=0.25, planner=planner)
            except Exception as exc:  # noqa: BLE001 - the controller must survive a failed plan
                if self._stop.is_set():
                    break
                self._log(logging.ERROR, f"planning failed: {exc!r}")
