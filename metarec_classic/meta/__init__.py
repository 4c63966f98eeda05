"""Meta-learning: the task corpus, its labels, the LightGBM meta-model and selection."""

from metarec_classic.meta._build import BuildStatus, build_labels, build_status, run_worker
from metarec_classic.meta._corpus import (
    DEFAULT_TASK_PLAN,
    TASK_KINDS,
    Task,
    cut_task,
    make_tasks,
    subset,
)
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
    load_pretrained_user_model,
    load_shipped_labels,
    pretrained_path,
    shipped_labels_path,
)
from metarec_classic.meta._segments import (
    NO_HISTORY,
    Condition,
    Segment,
    SegmentChoice,
    UserMetaModel,
    activity_segments,
    choose_per_segment,
    learned_segments,
)
from metarec_classic.meta._selection import (
    QUEUE_SPREAD,
    WARM_REFINE_SHARE,
    Selection,
    WarmStart,
    select,
)
from metarec_classic.meta._user_labels import (
    USER_LABELS_VERSION,
    UserLabelSet,
    build_user_labels,
    export_user_labels,
)

__all__ = [
    "DEFAULT_TASK_PLAN",
    "LABELS_VERSION",
    "NO_HISTORY",
    "QUEUE_SPREAD",
    "TASK_KINDS",
    "USER_LABELS_VERSION",
    "WARM_REFINE_SHARE",
    "BuildStatus",
    "Candidate",
    "Condition",
    "LabelSet",
    "MetaModel",
    "MetaModelFileError",
    "Segment",
    "SegmentChoice",
    "Selection",
    "Task",
    "UserLabelSet",
    "UserMetaModel",
    "WarmStart",
    "activity_segments",
    "build_labels",
    "build_status",
    "build_user_labels",
    "choose_per_segment",
    "cut_task",
    "design_configs",
    "export_labels",
    "export_user_labels",
    "learned_segments",
    "load_pretrained",
    "load_pretrained_user_model",
    "load_shipped_labels",
    "make_tasks",
    "pretrained_path",
    "recompute_task_features",
    "run_worker",
    "select",
    "shipped_labels_path",
    "subset",
]
