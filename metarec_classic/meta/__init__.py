"""Meta-learning: the task corpus, its labels, the LightGBM meta-model and selection."""

from metarec_classic.meta._build import BuildStatus, build_labels, build_status, run_worker
from metarec_classic.meta._corpus import DEFAULT_TASK_PLAN, Task, cut_task, make_tasks, subset
from metarec_classic.meta._labels import (
    LABELS_VERSION,
    LabelSet,
    design_configs,
    export_labels,
    recompute_task_features,
)
from metarec_classic.meta._model import Candidate, MetaModel, MetaModelFileError
from metarec_classic.meta._pretrained import (
    load_pretrained,
    load_shipped_labels,
    pretrained_path,
    shipped_labels_path,
)
from metarec_classic.meta._selection import Selection, select

__all__ = [
    "DEFAULT_TASK_PLAN",
    "LABELS_VERSION",
    "BuildStatus",
    "Candidate",
    "LabelSet",
    "MetaModel",
    "MetaModelFileError",
    "Selection",
    "Task",
    "build_labels",
    "build_status",
    "cut_task",
    "design_configs",
    "export_labels",
    "load_pretrained",
    "load_shipped_labels",
    "make_tasks",
    "pretrained_path",
    "recompute_task_features",
    "run_worker",
    "select",
    "shipped_labels_path",
    "subset",
]
