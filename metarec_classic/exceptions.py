"""Exceptions and warnings raised by metarec_classic.

Every exception derives from :class:`MetarecError` *and* the matching built-in type, so
callers can catch either (``except ValueError`` keeps working). :class:`Terminated` is
the one exception: it is a ``KeyboardInterrupt``, which ``except Exception`` must not
catch.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "DataWarning",
    "ExperimentalWarning",
    "InputConversionWarning",
    "MemoryLimitError",
    "MetarecError",
    "MetarecWarning",
    "Terminated",
    "TuningError",
]

BUG_REPORT = (
    "This is a bug in metarec_classic; please report it with the command or code that triggered it."
)


class MetarecError(Exception):
    """Base class of every error raised on purpose by metarec_classic."""


class DataError(MetarecError, ValueError):
    """Input data that cannot be used as it is; the message says what to change."""


class MemoryLimitError(MetarecError, MemoryError):
    """A fit that would need more memory than the model's ``max_memory_gb`` allows.

    Raised before the allocation; the message states the estimate, the limit and the fix.
    """


class TuningError(MetarecError, RuntimeError):
    """A search that produced no usable result (for example, every trial failed)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM received during a corpus build, which then stops as it does on Ctrl-C."""


class MetarecWarning(UserWarning):
    """Base class of every warning emitted by metarec_classic."""


class DataWarning(MetarecWarning):
    """Input rows were dropped, merged or converted; the data report counts them."""


class InputConversionWarning(MetarecWarning):
    """Input of an accepted but non-native type was converted (e.g. COO to CSR)."""


class ExperimentalWarning(MetarecWarning):
    """The called API may change without a deprecation period."""
