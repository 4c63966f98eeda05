"""The meta-model and labels that ship inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from metarec_classic.meta._labels import LabelSet
from metarec_classic.meta._model import MetaModel, MetaModelFileError
from metarec_classic.meta._segments import UserMetaModel

__all__ = [
    "load_pretrained",
    "load_pretrained_user_model",
    "load_shipped_labels",
    "pretrained_path",
    "shipped_labels_path",
]


def pretrained_path() -> Path:
    """Folder of the shipped meta-model (rebuilt by ``benchmarks/build_pretrained.py``)."""
    return Path(str(resources.files("metarec_classic.meta") / "pretrained"))


def shipped_labels_path() -> Path:
    """Folder of the labels the shipped meta-model was trained on."""
    return Path(str(resources.files("metarec_classic.meta") / "labels"))


def load_pretrained() -> MetaModel:
    """Load the shipped meta-model."""
    path = pretrained_path()
    if not path.is_dir():
        raise MetaModelFileError(
            f"The shipped meta-model is missing from {str(path)!r}; reinstall "
            "metarec-classic, or train one with `metarec train-meta` and pass its folder."
        )
    return MetaModel.load(path)


def load_shipped_labels() -> LabelSet:
    """Load the labels table shipped with the package."""
    return LabelSet.load(shipped_labels_path())


def load_pretrained_user_model() -> UserMetaModel:
    """Load the shipped per-user meta-model (it sits beside the dataset-level one)."""
    path = pretrained_path()
    if not (path / "user_metamodel.json").is_file():
        raise MetaModelFileError(
            f"The shipped per-user meta-model is missing from {str(path)!r}; reinstall "
            "metarec-classic, or train one and pass its folder as `user_meta_model`."
        )
    return UserMetaModel.load(path)
