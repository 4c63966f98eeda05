"""Rebuild the labels and the meta-model that ship with metarec_classic.

Cuts tasks from every dataset in the shared data folder, runs the label design of every
(task, algorithm) pair into a storage (a journal file by default, so an interrupted build
resumes where it stopped; a PostgreSQL URL lets several machines build together), exports
the labels table into the package and trains the shipped meta-model.

    python benchmarks/build_pretrained.py --workers 2     # one worker per core
    python benchmarks/build_pretrained.py --user-labels   # per-user labels at each best config
    python benchmarks/build_pretrained.py --export        # labels tables + meta-models
    python benchmarks/build_pretrained.py --refresh-features   # new meta-features, no search
    python benchmarks/build_pretrained.py --retrain            # meta-models only
    python benchmarks/build_pretrained.py --relabel ease       # one algorithm searched again

``--refresh-features`` alone reads the labels tables already in the package, so a change
to the meta-features reaches the shipped meta-models without the build's storage.
``--relabel`` runs the design of the named algorithms only (after a change to their
search space, say), builds their per-user labels, puts both in place of theirs in the
shipped tables and trains the meta-models again; the other algorithms' labels are kept.
``--retrain`` trains the meta-models again from the shipped labels tables as they are,
after a change to the meta-models themselves.

Workers take trials one at a time from the storage, so they never run the same one.
Figures (tasks, labels, wall time) are printed at the end of each step.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from metarec_classic.data import DATASETS, load_dataset
from metarec_classic.meta import (
    LabelSet,
    MetaModel,
    UserLabelSet,
    UserMetaModel,
    build_labels,
    build_user_labels,
    export_labels,
    export_user_labels,
    make_tasks,
    pretrained_path,
    recompute_task_features,
    shipped_labels_path,
)
from metarec_classic.recommenders import ALGORITHM_NAMES

HERE = Path(__file__).resolve().parent
DEFAULT_JOURNAL = HERE / "results" / "corpus.journal"
DEFAULT_USER_JOURNAL = HERE / "results" / "user_labels.journal"
#: Validation users sampled per task for the per-user labels.
USERS_PER_TASK = 200
# Task seeds: each dataset is cut with every plan entry once per seed.
SEEDS = (0,)
N_CONFIGS = 8
#: Design points of the algorithms that get more than N_CONFIGS. EASE is the best
#: algorithm of 40 of the 75 tasks, so the precision of its configuration decides most
#: picks, and its two parameters (L2 weight, popularity penalty) interact.
N_CONFIGS_BY_ALGORITHM = {"ease": 16}
MAX_INTERACTIONS = 25_000
MAX_ITEMS = 3_000
LARGE_MAX_INTERACTIONS = 80_000
LARGE_MAX_ITEMS = 6_000


def corpus_tasks(seeds: tuple[int, ...] = SEEDS) -> list:
    """The tasks of the shipped corpus: every shared dataset except the demo alias.

    Small cuts of every kind, plus one larger cut of each whole dataset (all users,
    bigger caps), so that the meta-model also sees data of the size users bring.
    """
    datasets = [(name, info.family) for name, info in DATASETS.items() if name != "demo"]
    small = make_tasks(
        datasets, seeds=seeds, max_interactions=MAX_INTERACTIONS, max_items=MAX_ITEMS
    )
    large = make_tasks(
        datasets,
        plan=[("users", 1.0)],
        seeds=seeds,
        max_interactions=LARGE_MAX_INTERACTIONS,
        max_items=LARGE_MAX_ITEMS,
    )
    return small + large


def design_groups(algorithms: list[str]) -> list[tuple[list[str], int]]:
    """``algorithms`` grouped by their design size: (algorithms, n_configs) pairs."""
    sizes = {a: N_CONFIGS_BY_ALGORITHM.get(a, N_CONFIGS) for a in algorithms}
    return [
        ([a for a in algorithms if sizes[a] == size], size) for size in sorted(set(sizes.values()))
    ]


def export_corpus(storage: str, tasks: list, algorithms: list[str]) -> LabelSet:
    """The labels of ``algorithms``, each group read with its own design size."""
    merged = None
    for group, n_configs in design_groups(algorithms):
        labels = export_labels(storage, tasks, algorithms=group, n_configs=n_configs)
        merged = labels if merged is None else merged.relabelled(labels)
    assert merged is not None
    return merged


def complete_tasks_only(labels: LabelSet) -> LabelSet:
    """Drop tasks that not every algorithm has labelled yet (a build still under way).

    A task's relative scores are taken against its best label, so a task missing an
    algorithm would overstate the others.
    """
    per_task = labels.labels.groupby("task_id")["algorithm"].nunique()
    complete = per_task[per_task == per_task.max()].index
    dropped = sorted(set(labels.tasks["task_id"]) - set(complete))
    if dropped:
        print(f"left out {len(dropped)} tasks not yet labelled by every algorithm: {dropped}")
    tasks = labels.tasks[labels.tasks["task_id"].isin(complete)]
    return LabelSet(
        labels.labels[labels.labels["task_id"].isin(complete)],
        tasks,
        {**labels.provenance, "n_tasks": len(tasks)},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storage", default=str(DEFAULT_JOURNAL), help="journal file or database URL"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--user-labels",
        action="store_true",
        help="per-user NDCG@10 of each task's best configurations (after the labels)",
    )
    parser.add_argument("--user-storage", default=str(DEFAULT_USER_JOURNAL))
    parser.add_argument("--export", action="store_true", help="export labels, train, save")
    parser.add_argument(
        "--refresh-features",
        action="store_true",
        help="compute the tasks' meta-features again (no search is rerun); without "
        "--export, of the labels tables in --labels-out, then train the meta-models",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train the meta-models again from the labels tables in --labels-out (no "
        "search, no meta-features)",
    )
    parser.add_argument(
        "--relabel",
        metavar="ALGORITHMS",
        help="comma-separated algorithms to search again; their labels replace theirs in "
        "the tables of --labels-out",
    )
    parser.add_argument(
        "--retry-lost",
        action="store_true",
        help="try once more each configuration (or per-user pair) whose every try died",
    )
    parser.add_argument("--labels-out", type=Path, default=shipped_labels_path())
    parser.add_argument("--model-out", type=Path, default=pretrained_path())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    warnings.simplefilter("ignore")
    tasks = corpus_tasks()
    started = time.perf_counter()

    if args.relabel:
        return relabel(args, tasks, [a.strip() for a in args.relabel.split(",")], started)

    if args.export or args.refresh_features or args.retrain:
        if args.export:
            labels = complete_tasks_only(export_corpus(args.storage, tasks, ALGORITHM_NAMES))
        else:
            labels = LabelSet.load(args.labels_out)
        if args.refresh_features:
            labels = recompute_task_features(labels, tasks, loader=load_dataset)
        if args.export or args.refresh_features:
            labels.save(args.labels_out)
        model = MetaModel().fit(labels)
        model.save(args.model_out)
        if args.export:
            user_labels = export_user_labels(
                args.user_storage, labels, tasks, users_per_task=USERS_PER_TASK
            )
            user_labels.save(args.labels_out)
        else:
            user_labels = UserLabelSet.load(args.labels_out)
        user_model = UserMetaModel().fit(user_labels.users, user_labels.scores, labels.tasks)
        user_model.save(args.model_out)
        print(
            f"labels: {len(labels.labels)} from {len(labels.tasks)} tasks and "
            f"{len(user_labels.scores)} per-user labels in {args.labels_out}; meta-model "
            f"with {len(model.candidates_)} candidates and per-user meta-model saved to "
            f"{args.model_out} in {time.perf_counter() - started:.1f} s"
        )
        return 0

    if args.user_labels:
        labels = complete_tasks_only(export_corpus(args.storage, tasks, ALGORITHM_NAMES))
        user_labels = build_user_labels(
            labels,
            tasks,
            storage=args.user_storage,
            users_per_task=USERS_PER_TASK,
            retry_lost=args.retry_lost,
        )
        print(
            f"per-user labels: {len(user_labels.scores)} from {len(user_labels.users)} users "
            f"in {time.perf_counter() - started:.1f} s"
        )
        return 0

    build(args, tasks, ALGORITHM_NAMES)
    print(
        f"{len(tasks)} tasks labelled by {args.workers} workers in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


def build(args: argparse.Namespace, tasks: list, algorithms: list[str]) -> None:
    """Run the label design of ``algorithms`` on ``tasks`` into ``args.storage``."""
    if "://" not in args.storage:
        Path(args.storage).parent.mkdir(parents=True, exist_ok=True)
    for group, n_configs in design_groups(algorithms):
        build_labels(
            tasks,
            algorithms=group,
            n_configs=n_configs,
            storage=args.storage,
            workers=args.workers,
            loader=load_dataset,
            show_progress=True,
            retry_lost=args.retry_lost,
        )


def relabel(args: argparse.Namespace, tasks: list, algorithms: list[str], started: float) -> int:
    """Search ``algorithms`` again and put their labels in place in the shipped tables."""
    unknown = sorted(set(algorithms) - set(ALGORITHM_NAMES))
    if unknown:
        raise SystemExit(f"--relabel: unknown algorithms {unknown}; use {ALGORITHM_NAMES}")
    shipped = LabelSet.load(args.labels_out)
    build(args, tasks, algorithms)
    labels = shipped.relabelled(export_corpus(args.storage, tasks, algorithms))
    labels.save(args.labels_out)
    print(
        f"{len(tasks)} tasks relabelled for {algorithms} in {time.perf_counter() - started:.1f} s"
    )
    user_labels = build_user_labels(
        labels,
        tasks,
        storage=args.user_storage,
        users_per_task=USERS_PER_TASK,
        algorithms=algorithms,
        retry_lost=args.retry_lost,
    )
    user_labels = UserLabelSet.load(args.labels_out).relabelled(user_labels)
    user_labels.save(args.labels_out)
    MetaModel().fit(labels).save(args.model_out)
    UserMetaModel().fit(user_labels.users, user_labels.scores, labels.tasks).save(args.model_out)
    print(
        f"relabelled {algorithms}: {len(labels.labels)} labels, {len(user_labels.scores)} "
        f"per-user labels; meta-models saved to {args.model_out} in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
