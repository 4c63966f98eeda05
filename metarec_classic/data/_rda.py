"""A small reader for R's binary serialisation format (``.rda`` / ``.RData`` files).

Only what rating data needs is supported: atomic vectors, lists, pairlists, symbols,
attributes and S4 objects (such as a Matrix ``dgCMatrix``), in the XDR (big-endian)
encoding that ``save()`` writes by default, compressed with gzip, bzip2 or xz.
Closures, environments with bindings and byte code raise a :class:`DataError`.

The format is described in R's "R Internals" manual, section "Serialization Formats".
:mod:`pyreadr` cannot read S4 objects and returns nothing for them, which is why this
module exists.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metarec_classic.exceptions import DataError

__all__ = ["RObject", "read_rda"]

# SEXP type codes used below.
_NILSXP, _SYMSXP, _LISTSXP, _CLOSXP, _ENVSXP = 0, 1, 2, 3, 4
_LANGSXP, _CHARSXP, _LGLSXP, _INTSXP, _REALSXP = 6, 9, 10, 13, 14
_CPLXSXP, _STRSXP, _VECSXP, _EXPRSXP, _RAWSXP, _S4SXP = 15, 16, 19, 20, 24, 25
# Pseudo types that only occur in serialised streams.
_REFSXP, _NILVALUE, _GLOBALENV, _EMPTYENV, _BASEENV = 255, 254, 253, 242, 241
_MISSINGARG, _UNBOUNDVALUE, _BASENAMESPACE = 251, 252, 250
_NAMESPACESXP, _PACKAGESXP, _ALTREP = 249, 248, 238

_NA_INTEGER = -(2**31)


@dataclass
class RObject:
    """One deserialised R value.

    Attributes
    ----------
    rtype : int
        The R SEXP type code (14 = double vector, 25 = S4 object, ...).
    value : Any
        A numpy array for atomic vectors, a list for lists and pairlists, a ``str`` for
        symbols, ``None`` for NULL and S4 objects.
    attributes : dict of str to RObject
        Attributes; for an S4 object these are its slots.
    tags : list of str or None
        Element names of a pairlist.
    """

    rtype: int
    value: Any = None
    attributes: dict[str, RObject] = field(default_factory=dict)
    tags: list[str | None] | None = None

    def slot(self, name: str) -> Any:
        """Return the value of attribute (S4 slot) ``name``."""
        if name not in self.attributes:
            raise DataError(
                f"The R object has no slot {name!r}; it has {sorted(self.attributes)!r}."
            )
        return self.attributes[name].value


def read_rda(path: str | Path) -> dict[str, RObject]:
    """Read every object saved in an ``.rda`` / ``.RData`` file.

    Parameters
    ----------
    path : str or Path
        The file, as written by R's ``save()``.

    Returns
    -------
    dict of str to RObject
        The saved objects by name.
    """
    raw = Path(path).read_bytes()
    data = _decompress(raw)
    if data[:5] not in (b"RDX2\n", b"RDX3\n"):
        raise DataError(
            f"{str(path)!r} is not an R data file saved with `save()` (it starts with "
            f"{data[:5]!r}); re-save it in R with `save(obj, file=...)`."
        )
    reader = _Reader(data, 5, source=str(path))
    top = reader.read_stream()
    if top.rtype != _LISTSXP or top.tags is None:
        raise DataError(f"{str(path)!r} does not hold a list of named R objects.")
    return {str(tag): value for tag, value in zip(top.tags, top.value, strict=True)}


def _decompress(raw: bytes) -> bytes:
    """Undo the compression R applied when saving (gzip by default)."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    return raw


class _Reader:
    """Sequential decoder of one XDR serialisation stream."""

    def __init__(self, data: bytes, pos: int, *, source: str) -> None:
        self.data = data
        self.pos = pos
        self.source = source
        self.refs: list[RObject] = []

    # -- primitives --------------------------------------------------------------------
    def _int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def _length(self) -> int:
        n = self._int()
        if n == -1:  # long vector: two more ints, upper and lower 32 bits
            upper, lower = self._int(), self._int()
            n = (upper << 32) + (lower & 0xFFFFFFFF)
        return n

    def _array(self, dtype: str, n: int, itemsize: int) -> np.ndarray:
        arr = np.frombuffer(self.data, dtype=dtype, count=n, offset=self.pos)
        self.pos += n * itemsize
        return arr.astype(arr.dtype.newbyteorder("="))

    # -- stream ------------------------------------------------------------------------
    def read_stream(self) -> RObject:
        fmt = self.data[self.pos : self.pos + 2]
        if fmt != b"X\n":
            raise DataError(
                f"{self.source!r} uses the R serialisation format {fmt!r}; only the default "
                "XDR format is supported. Re-save it in R with `save(..., ascii=FALSE)`."
            )
        self.pos += 2
        version = self._int()
        self._int()  # R version that wrote the file
        self._int()  # oldest R version that can read it
        if version == 3:
            n = self._int()
            self.pos += n  # native encoding name, e.g. "UTF-8"
        elif version != 2:
            raise DataError(f"{self.source!r} uses R serialisation version {version}.")
        return self.read_item()

    def read_item(self) -> RObject:
        flags = self._int()
        rtype = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))

        if rtype == _NILVALUE:
            return RObject(_NILSXP)
        if rtype == _REFSXP:
            index = flags >> 8
            if index == 0:
                index = self._int()
            return self.refs[index - 1]
        if rtype in (_GLOBALENV, _EMPTYENV, _BASEENV, _BASENAMESPACE, _MISSINGARG, _UNBOUNDVALUE):
            return RObject(_ENVSXP)
        if rtype in (_NAMESPACESXP, _PACKAGESXP):
            self._int()  # always 0
            names = [self.read_item().value for _ in range(self._int())]
            obj = RObject(_ENVSXP, value=names)
            self.refs.append(obj)
            return obj
        if rtype == _SYMSXP:
            obj = RObject(_SYMSXP, value=self.read_item().value)
            self.refs.append(obj)
            return obj
        if rtype in (_LISTSXP, _LANGSXP):
            return self._read_pairlist(rtype, has_attr, has_tag)
        if rtype == _ALTREP:
            return self._read_altrep()
        if rtype == _CHARSXP:
            n = self._int()
            if n == -1:
                return RObject(_CHARSXP, value=None)
            text = self.data[self.pos : self.pos + n].decode("utf-8", errors="replace")
            self.pos += n
            return RObject(_CHARSXP, value=text)

        obj = self._read_vector(rtype)
        if has_attr:
            obj.attributes = self._attributes(self.read_item())
        return obj

    def _read_vector(self, rtype: int) -> RObject:
        if rtype in (_LGLSXP, _INTSXP):
            return RObject(rtype, value=self._array(">i4", self._length(), 4))
        if rtype == _REALSXP:
            return RObject(rtype, value=self._array(">f8", self._length(), 8))
        if rtype == _CPLXSXP:
            return RObject(rtype, value=self._array(">c16", self._length(), 16))
        if rtype == _RAWSXP:
            n = self._length()
            raw = self.data[self.pos : self.pos + n]
            self.pos += n
            return RObject(rtype, value=np.frombuffer(raw, dtype=np.uint8))
        if rtype == _STRSXP:
            n = self._length()
            return RObject(rtype, value=[self.read_item().value for _ in range(n)])
        if rtype in (_VECSXP, _EXPRSXP):
            n = self._length()
            return RObject(rtype, value=[self.read_item() for _ in range(n)])
        if rtype == _S4SXP:
            return RObject(rtype)
        raise DataError(
            f"{self.source!r} holds an R object of type {rtype} (a function, environment or "
            "byte code), which this reader does not support; save only data objects."
        )

    def _read_pairlist(self, rtype: int, has_attr: bool, has_tag: bool) -> RObject:
        # A pairlist is a chain of cells; walk the CDR chain in a loop, not by recursion.
        values: list[Any] = []
        tags: list[str | None] = []
        attributes: dict[str, RObject] = {}
        while True:
            if has_attr:
                attributes = self._attributes(self.read_item())
            tags.append(self.read_item().value if has_tag else None)
            values.append(self.read_item())
            flags = self._int()
            next_type = flags & 0xFF
            if next_type != rtype:
                self.pos -= 4
                tail = self.read_item()
                if tail.rtype != _NILSXP:
                    values.append(tail)
                    tags.append(None)
                break
            has_attr = bool(flags & (1 << 9))
            has_tag = bool(flags & (1 << 10))
        return RObject(rtype, value=values, attributes=attributes, tags=tags)

    def _read_altrep(self) -> RObject:
        info = self.read_item()
        state = self.read_item()
        attr = self.read_item()
        kind = info.value[0].value if info.value else None
        if kind == "compact_intseq":
            n, start, step = (int(v) for v in state.value)
            value: Any = np.arange(start, start + n * step, step, dtype=np.int32)
            obj = RObject(_INTSXP, value=value)
        elif kind == "compact_realseq":
            length, first, increment = (float(v) for v in state.value)
            values = first + increment * np.arange(int(length), dtype=np.float64)
            obj = RObject(_REALSXP, value=values)
        elif kind is not None and kind.startswith("wrap_"):
            obj = state.value[0]
        elif kind == "deferred_string":
            base = state.value[0]
            obj = RObject(_STRSXP, value=[str(v) for v in np.asarray(base.value)])
        else:
            raise DataError(f"{self.source!r} holds an unsupported compact R vector {kind!r}.")
        if attr.rtype == _LISTSXP:
            obj.attributes = self._attributes(attr)
        return obj

    @staticmethod
    def _attributes(pairlist: RObject) -> dict[str, RObject]:
        if pairlist.rtype != _LISTSXP or pairlist.tags is None:
            return {}
        return {str(tag): value for tag, value in zip(pairlist.tags, pairlist.value, strict=True)}
