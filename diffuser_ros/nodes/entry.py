"""The ``main()`` shared by the node executables: start-up, spin, and a clean shutdown on SIGINT
and SIGTERM.

rclpy's own signal handler shuts the context down the moment Ctrl-C arrives, while a timer or the
planning thread may be publishing: that publish then raises ``RCLError`` ("context is not
valid") and the process exits 1; a second Ctrl-C during that teardown aborts it. Here the first
SIGINT/SIGTERM only asks the spin loop to stop; the node is then shut down in order (its
``shutdown()``: safe action out, worker joined) *before* the context goes, and further signals
are ignored (the shutdown is already under way).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


class StopRequest:
    """Set by SIGINT/SIGTERM (once); what the spin loops watch."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""

    def __call__(self, signum, _frame) -> None:
        if not self._event.is_set():
            self.signal_name = signal.Signals(signum).name
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    @staticmethod
    def ignore_from_now_on() -> None:
        """Once shut down: ignore further signals. At exit CPython resets Python-level handlers
        to SIG_DFL while DDS is still tearing down, so the second SIGINT a launch sends would
        otherwise kill the process (exit -2)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def spin_until(executor, done: Callable[[], bool], stop: StopRequest,
               period: float = 0.05, after_spin: Callable[[], None] | None = None) -> None:
    """Spin ``executor`` until ``done()`` or a stop request (signals handled by ``stop``);
    ``after_spin()`` runs after every turn (e.g. to print progress)."""
    while not stop.requested and not done() and executor.context.ok():
        executor.spin_once(timeout_sec=period)
        if after_spin is not None:
            after_spin()


def run_node(args, create: Callable[[], Node], startup_errors: tuple[type[BaseException], ...],
             logger_name: str, start: Callable[[Node], None] | None = None,
             done: Callable[[Node], bool] | None = None) -> None:
    """Init rclpy, create the node, ``start(node)`` (e.g. lifecycle autostart), spin until
    ``done(node)`` or SIGINT/SIGTERM, then shut down cleanly.

    A ``startup_errors`` exception is logged as one ``cannot start: …`` line (no traceback) and
    the process exits with code 1; a signal or an external shutdown exits 0.
    """
    stop = StopRequest()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop.install()
    logger = rclpy.logging.get_logger(logger_name)
    node = None
    executor = None
    code = 0
    try:
        node = create()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if start is not None:
            start(node)
        spin_until(executor, (lambda: done(node)) if done else (lambda: False), stop)
        if stop.requested:
            logger.info(f"{stop.signal_name}: shutting down")
    except startup_errors as exc:
        logger.fatal(f"cannot start: {exc}")
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            shutdown = getattr(node, "shutdown", None)
            if callable(shutdown):
                shutdown()
            if executor is not None:
                executor.shutdown()
            node.destroy_node()
        rclpy.try_shutdown(uninstall_handlers=False)
        stop.ignore_from_now_on()
    if code:
        sys.exit(code)
