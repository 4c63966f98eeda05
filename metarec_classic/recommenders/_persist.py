"""Save and load fitted recommenders as arrays plus JSON, without pickle.

A fitted recommender is its constructor parameters plus its fitted attributes (names
ending in ``_``). Arrays and sparse matrices go to ``arrays.npz`` (read back with
``allow_pickle=False``), everything JSON can hold goes to ``recommender.json`` together
with the format version and the SHA-256 of the arrays file. Fitted attributes of any
other type (for example a third-party model object) are not written: the class rebuilds
them from the arrays in ``_restore``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from metarec_classic.exceptions import MetarecError
from metarec_classic.recommenders._base import BaseRecommender
from metarec_classic.recommenders._registry import get_recommender_class

__all__ = ["FORMAT_VERSION", "RecommenderFileError", "load_recommender", "save_recommender"]

#: Version of the saved layout.
FORMAT_VERSION = 1
_JSON = "recommender.json"
_ARRAYS = "arrays.npz"


class RecommenderFileError(MetarecError, ValueError):
    """A saved recommender that is missing, tampered with, truncated or of another version."""


def save_recommender(model: BaseRecommender, folder: str | os.PathLike[str]) -> Path:
    """Write a fitted ``model`` to ``folder`` (created if needed)."""
    if not hasattr(model, "user_items_"):
        raise ValueError("Only a fitted recommender can be saved; call `fit` first.")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    sparse: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        if sp.issparse(value):
            csr = sp.csr_matrix(value)
            sparse[name] = "csr"
            arrays[f"{name}.data"] = csr.data
            arrays[f"{name}.indices"] = csr.indices
            arrays[f"{name}.indptr"] = csr.indptr
            arrays[f"{name}.shape"] = np.asarray(csr.shape, dtype=np.int64)
        elif isinstance(value, np.ndarray) and value.dtype != object:
            arrays[name] = value
        elif _is_json(value):
            values[name] = value
    np.savez(path / _ARRAYS, **arrays)  # type: ignore[arg-type]
    digest = hashlib.sha256((path / _ARRAYS).read_bytes()).hexdigest()
    document = {
        "format_version": FORMAT_VERSION,
        "algorithm": model.name,
        "params": model.get_params(),
        "sparse": sparse,
        "values": values,
        "arrays_sha256": digest,
    }
    document["json_sha256"] = _json_digest(document)
    (path / _JSON).write_text(json.dumps(document, indent=1, default=_plain) + "\n")
    return path


def load_recommender(folder: str | os.PathLike[str]) -> BaseRecommender:
    """Read a recommender written by :func:`save_recommender`, refusing damaged files."""
    path = Path(folder)
    if not (path / _JSON).is_file() or not (path / _ARRAYS).is_file():
        raise RecommenderFileError(
            f"No saved recommender in {str(path)!r}: {_JSON} and {_ARRAYS} are both needed."
        )
    try:
        document = json.loads((path / _JSON).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecommenderFileError(
            f"{str(path / _JSON)!r} is not valid JSON ({err}); the file is damaged or truncated."
        ) from err
    if not isinstance(document, dict) or document.pop("json_sha256", None) != _json_digest(
        document
    ):
        raise RecommenderFileError(
            f"The checksum of {str(path / _JSON)!r} does not match the one recorded when it "
            "was saved: the file was changed or truncated. Fit and save it again."
        )
    if document.get("format_version") != FORMAT_VERSION:
        raise RecommenderFileError(
            f"The recommender in {str(path)!r} has format version "
            f"{document.get('format_version')!r}; this metarec_classic reads version "
            f"{FORMAT_VERSION}. Fit and save it again."
        )
    raw = (path / _ARRAYS).read_bytes()
    if hashlib.sha256(raw).hexdigest() != document.get("arrays_sha256"):
        raise RecommenderFileError(
            f"The checksum of {str(path / _ARRAYS)!r} does not match the one recorded when "
            "it was saved: the file was changed or truncated. Fit and save it again."
        )
    model = get_recommender_class(document["algorithm"])(**document["params"])
    with np.load(path / _ARRAYS, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    for name in document["sparse"]:
        shape = tuple(int(v) for v in arrays.pop(f"{name}.shape"))
        matrix = sp.csr_matrix(
            (
                arrays.pop(f"{name}.data"),
                arrays.pop(f"{name}.indices"),
                arrays.pop(f"{name}.indptr"),
            ),
            shape=shape,
        )
        setattr(model, name, matrix)
    for name, value in arrays.items():
        setattr(model, name, value)
    for name, value in document["values"].items():
        setattr(model, name, value)
    model._restore()
    return model


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, default=_refuse)
    except TypeError:
        return False
    return True


def _refuse(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Cannot write {type(value).__name__} to JSON.")


def _json_digest(document: Any) -> str:
    """SHA-256 of a JSON document in canonical form (sorted keys, no spaces)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
