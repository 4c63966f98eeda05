"""A record of everything a loader or a split dropped, merged or converted."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from metarec_classic.exceptions import DataWarning

__all__ = ["DataReport"]

_log = logging.getLogger(__name__)


@dataclass
class DataReport:
    """Counts of rows dropped, merged or converted while building data, with reasons.

    Nothing is changed silently: every step that removes or alters input rows calls
    :meth:`add`, which counts the rows under a short key (``"duplicate_rows_merged"``,
    ``"nan_weight_dropped"``, ...) and keeps one human-readable message per key.

    Attributes
    ----------
    counts : dict of str to int
        Number of rows affected, by kind of change.
    messages : dict of str to str
        One sentence per kind of change, naming the column and the rule applied.
    source : str
        Where the data came from (a path, ``"demo"``, ``"DataFrame"``, ...).
    hold_warnings : bool
        Keep the warnings of :meth:`add` until :meth:`release_warnings`. A reader holds
        them until it knows whether its error will quote them (then
        :meth:`discard_held_warnings`), so that nothing is said twice or left unsaid.
    """

    source: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    messages: dict[str, str] = field(default_factory=dict)
    hold_warnings: bool = False
    _held: list[str] = field(default_factory=list, repr=False, compare=False)

    def add(self, key: str, count: int, message: str, *, warn: bool = True) -> None:
        """Record that ``count`` rows were affected by the change named ``key``.

        Parameters
        ----------
        key : str
            Short identifier of the change, used as the key in :attr:`counts`.
        count : int
            Number of rows affected; zero is ignored.
        message : str
            Sentence that names the problem, the column and the rule or fix.
        warn : bool, default=True
            Also emit a :class:`~metarec_classic.exceptions.DataWarning`.
        """
        if count <= 0:
            return
        self.counts[key] += int(count)
        self.messages[key] = message
        if warn and self.hold_warnings:
            self._held.append(message)
        elif warn:
            warnings.warn(message, DataWarning, stacklevel=3)
        else:
            _log.info("%s", message)

    def release_warnings(self, stacklevel: int = 2) -> None:
        """Emit the warnings held so far, once each, and stop holding new ones.

        ``stacklevel`` counts from the caller, as in :func:`warnings.warn`.
        """
        held, self._held = self._held, []
        self.hold_warnings = False
        for message in held:
            warnings.warn(message, DataWarning, stacklevel=stacklevel + 1)

    def discard_held_warnings(self) -> None:
        """Forget the warnings held so far (an error about to be raised quotes them)."""
        self._held.clear()

    def merge(self, other: DataReport) -> None:
        """Add the counts and messages of ``other`` into this report."""
        self.counts.update(other.counts)
        self.messages.update(other.messages)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable view of the report."""
        return {
            "source": self.source,
            "counts": dict(self.counts),
            "messages": dict(self.messages),
        }

    def __bool__(self) -> bool:
        return bool(self.counts)
