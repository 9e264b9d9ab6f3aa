"""``StateMailbox``: the newest state waiting to be planned on (rclpy-free, thread-safe).

One slot, so planning never works through a backlog: a newer state replaces an older one that was
not planned on yet. It also spots states sent again by a lockstep simulator that lost an action:
one re-sent while it is being planned on is dropped (its action is coming); one re-sent after it
was answered is handed back with its answer, to be sent again without a second plan.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class State:
    """A checked observation, when it was measured, and the sender's stamp (None: unstamped)."""

    observation: np.ndarray
    stamp_ns: int
    key: int | None


class StateMailbox:
    """Put from the node's executor, taken by the planning worker."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._waiting: State | None = None
        self._in_progress: int | None = None
        self._answered: tuple[int, np.ndarray] | None = None
        self.latest: State | None = None          # the newest state, planned on or not
        self.latest_stamp_ns: int | None = None   # its stamp (also of a dropped re-send)

    def put(self, state: State) -> bool:
        """Leave ``state`` for the worker; False when it is the state being planned on, sent
        again (dropped: its action is coming)."""
        with self._cv:
            self.latest_stamp_ns = state.stamp_ns
            if state.key is not None and state.key == self._in_progress:
                return False
            self._waiting = self.latest = state
            self._cv.notify()
        return True

    def take(self, timeout: float | None = 0.0) -> State | None:
        """The waiting state, after waiting up to ``timeout`` s for one (None: none came); it is
        in progress from now until :meth:`done`, so a copy arriving meanwhile is dropped."""
        with self._cv:
            if self._waiting is None and timeout != 0.0:
                self._cv.wait(timeout)
            state, self._waiting = self._waiting, None
            if state is not None:
                self._in_progress = state.key
            return state

    def answer_to(self, state: State) -> np.ndarray | None:
        """The action already sent for a re-sent ``state`` (None: it is new)."""
        with self._cv:
            answered = self._answered
            if state.key is not None and answered is not None and state.key == answered[0]:
                return answered[1]
            return None

    def answered(self, state: State, action: np.ndarray) -> None:
        """Remember the action sent for ``state`` (stamped states only)."""
        with self._cv:
            self._answered = (state.key, action) if state.key is not None else None

    def done(self) -> None:
        """Planning on the state in progress has ended (sent or not)."""
        with self._cv:
            self._in_progress = None

    def clear(self, forget_stamp: bool = False) -> None:
        """Drop the waiting state (and with ``forget_stamp`` the newest stamp: no state yet)."""
        with self._cv:
            self._waiting = None
            if forget_stamp:
                self.latest_stamp_ns = None

    def wake(self) -> None:
        """Wake a worker waiting in :meth:`take` (to stop it)."""
        with self._cv:
            self._cv.notify_all()
