"""wsagg's logging: every progress message is a record of a logger under ``"wsagg"``.

The package attaches a ``NullHandler`` to ``logging.getLogger("wsagg")`` (``wsagg/__init__``),
so a library user sees nothing unless they configure logging or ask an estimator for
``verbose`` output. :func:`verbose_log` is how an estimator reports with ``verbose=...``:

* the record goes to the ``wsagg.<module>`` logger whatever its level (``verbose`` is the
  request), so a configured handler (``logging.basicConfig(...)``, a file handler on
  ``"wsagg"``) receives and formats it, subject to the handler's own level;
* with no handler configured anywhere on the logger's chain (only wsagg's ``NullHandler``),
  the message is written to ``stderr``, one line, so ``verbose=1`` works without any
  logging set-up (never to ``stdout``, which stays clean for data).

Layer L0: imports nothing else of wsagg.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["get_logger", "verbose_log"]


def get_logger(name: str) -> logging.Logger:
    """The logger of a wsagg module (``name`` = its ``__name__``, under ``"wsagg"``)."""
    return logging.getLogger(name)


def _has_handler(logger: logging.Logger) -> bool:
    """Whether a handler other than a ``NullHandler`` would see records of ``logger``."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def verbose_log(logger: logging.Logger, verbose: int, need: int, msg: str) -> None:
    """Report ``msg`` when ``verbose >= need`` (``need=1``: INFO, ``need>=2``: DEBUG).

    Parameters
    ----------
    logger : logging.Logger
        The module's logger (:func:`get_logger`).
    verbose : int
        The estimator's ``verbose`` parameter.
    need : int
        The verbosity from which the message is shown.
    msg : str
        One line.
    """
    if int(verbose) < need:
        return
    level = logging.INFO if need <= 1 else logging.DEBUG
    if _has_handler(logger):
        logger.handle(logger.makeRecord(logger.name, level, "(wsagg)", 0, msg, (), None))
    else:
        print(msg, file=sys.stderr)
