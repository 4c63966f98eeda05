"""Rebuild the labels and the meta-model that ship with metarec_classic.

Cuts tasks from every dataset in the shared data folder, runs the label design of every
(task, algorithm) pair into a journal file (so an interrupted build resumes where it
stopped), exports the labels table into the package and trains the shipped meta-model.

    python benchmarks/build_pretrained.py --shard 0/2 &   # two processes, one per core
    python benchmarks/build_pretrained.py --shard 1/2 &
    wait
    python benchmarks/build_pretrained.py --export        # labels table + meta-model

Each shard takes every n-th task, so shards never run the same study. Figures (tasks,
labels, wall time) are printed at the end of each step.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

from metarec_classic.data import DATASETS, load_dataset
from metarec_classic.meta import (
    LabelSet,
    MetaModel,
    build_labels,
    export_labels,
    make_tasks,
    pretrained_path,
    recompute_task_features,
    shipped_labels_path,
)

HERE = Path(__file__).resolve().parent
DEFAULT_JOURNAL = HERE / "results" / "corpus.journal"
# Task seeds: each dataset is cut with every plan entry once per seed.
SEEDS = (0,)
N_CONFIGS = 8
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
    parser.add_argument("--journal", type=Path, default=DEFAULT_JOURNAL)
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th task from i")
    parser.add_argument("--export", action="store_true", help="export labels, train, save")
    parser.add_argument(
        "--refresh-features",
        action="store_true",
        help="with --export: compute the tasks' meta-features again (no search is rerun)",
    )
    parser.add_argument("--labels-out", type=Path, default=shipped_labels_path())
    parser.add_argument("--model-out", type=Path, default=pretrained_path())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    warnings.simplefilter("ignore")
    tasks = corpus_tasks()
    started = time.perf_counter()

    if args.export:
        labels = export_labels(str(args.journal), tasks, n_configs=N_CONFIGS)
        labels = complete_tasks_only(labels)
        if args.refresh_features:
            labels = recompute_task_features(labels, tasks, loader=load_dataset)
        labels.save(args.labels_out)
        model = MetaModel().fit(labels)
        model.save(args.model_out)
        print(
            f"exported {len(labels.labels)} labels from {len(labels.tasks)} tasks to "
            f"{args.labels_out}; meta-model with {len(model.candidates_)} candidates to "
            f"{args.model_out} in {time.perf_counter() - started:.1f} s"
        )
        return 0

    index, count = (int(part) for part in args.shard.split("/"))
    mine = tasks[index::count]
    args.journal.parent.mkdir(parents=True, exist_ok=True)
    build_labels(mine, n_configs=N_CONFIGS, storage=str(args.journal), loader=load_dataset)
    print(
        f"shard {args.shard}: {len(mine)} tasks labelled in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
