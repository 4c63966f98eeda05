"""The ``metarec`` command line.

Every command prints a readable summary, or one JSON document with ``--json``; progress
bars, logs and warnings go to stderr. Exit status: 0 success, 2 bad input (data,
arguments, storage), 1 an internal error, 3 a corpus build that ended with configurations
left unlabelled (the labels are still written; the warning says how to finish them).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import logging
import math
import os
import re
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from metarec_classic._metarecommender import MetaRecommender
from metarec_classic._version import __version__
from metarec_classic.data import (
    DATASETS,
    IdMap,
    Interactions,
    leave_last_k_out_split,
    load_dataset,
    load_item_titles,
    locate_dataset,
    random_holdout_split,
    temporal_split,
)
from metarec_classic.evaluation import evaluate
from metarec_classic.exceptions import DataError, MetarecError, Terminated
from metarec_classic.meta import (
    DEFAULT_TASK_PLAN,
    TASK_KINDS,
    LabelSet,
    MetaModel,
    Task,
    build_labels,
    build_status,
    make_tasks,
)
from metarec_classic.recommenders import ALGORITHM_NAMES, make_recommender
from metarec_classic.tuning import tune

__all__ = ["main"]

_log = logging.getLogger("metarec_classic.cli")

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_UNLABELLED = 0, 1, 2, 3


class BadInput(MetarecError, ValueError):
    """A command-line argument that cannot be used."""


class _UsageError(Exception):
    """A command line that argparse cannot parse; carries argparse's own text."""

    def __init__(self, usage: str, prog: str, message: str) -> None:
        super().__init__(message)
        self.usage, self.prog, self.message = usage, prog, message


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors reach :func:`main` instead of exiting there."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.format_usage(), self.prog, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``metarec`` command; return the exit status."""
    parser = _build_parser()
    tokens = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extras = parser.parse_known_args(tokens)
        if extras:
            # Named by the command's own parser, whose usage lists the flags it takes
            # (the top-level usage would only list the commands).
            args.command_parser.error(_unrecognized(extras, args.command_parser))
    except _UsageError as err:
        # argparse's own report, plus the JSON document a --json caller reads.
        print(f"{err.usage}{err.prog}: error: {err.message}", file=sys.stderr)
        if "--json" in tokens:
            document = {"error": err.message, "kind": "usage", "exit_status": EXIT_BAD_INPUT}
            print(json.dumps(document, indent=2))
        return EXIT_BAD_INPUT
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.simplefilter("default")
    # Commands that read a data file take its reading options as flags; the others (a
    # build reads each known dataset by its own documented rules) have none to suggest.
    reads_files = bool(getattr(args, "reads_files", False))
    warnings.showwarning = functools.partial(_show_warning, reads_files=reads_files)
    try:
        result = args.handler(args)
    except (MetarecError, ValueError, TypeError, FileNotFoundError, KeyError) as err:
        if args.debug:  # the traceback, and still the exit status of bad input
            traceback.print_exc()
        return _failed(args, _message(err, reads_files), EXIT_BAD_INPUT, what="error")
    except KeyboardInterrupt as err:
        storage = getattr(args, "storage", None)
        hint = (
            f" Finished trials are saved in {storage!r}; rerun the same command to resume."
            if storage
            else " Nothing was saved: pass --storage FILE to make a search resumable."
        )
        terminated = isinstance(err, Terminated)
        # The shell's convention: 128 + the signal's number.
        status = 128 + (signal.SIGTERM if terminated else signal.SIGINT)
        what = "terminated" if terminated else "interrupted"
        return _failed(args, hint.strip(), status, what=what)
    except Exception as err:  # the last line of defence: report, never a bare traceback
        if args.debug:
            raise
        return _failed(
            args,
            f"{type(err).__name__}: {err}. This is a bug in metarec_classic; rerun with "
            "--debug for the traceback and report it.",
            EXIT_INTERNAL,
            what="internal error",
        )
    try:
        _print_result(result, args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`| head`): the usual quiet end, not a traceback. Later
        # writes at exit would fail again, so stdout goes nowhere from here.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return EXIT_UNLABELLED if result.get("n_unlabelled") else EXIT_OK


def _unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """The message for unknown arguments, with the nearest flag for a misspelt one."""
    flags = [flag for action in parser._actions for flag in action.option_strings]
    message = f"unrecognized arguments: {' '.join(extras)}"
    for extra in extras:
        near = difflib.get_close_matches(extra.split("=", 1)[0], flags, n=1, cutoff=0.75)
        if extra.startswith("-") and near:
            message += f" (did you mean {near[0]}?)"
            break
    return f"{message}; see 'metarec {parser.prog.split()[-1]} --help'"


def _print_result(result: dict[str, Any], args: argparse.Namespace) -> None:
    if "recommendations" in result:
        table = result["recommendations"]
        if args.json:
            print(table.to_json(orient="records", indent=2))
        else:
            print(table.to_csv(index=False), end="")
    elif args.json:
        print(json.dumps(result, indent=2, default=_json_default))
    else:
        print(args.formatter(result))


# -- commands ------------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> dict[str, Any]:
    data = _load(args)
    degrees = np.diff(data.user_items.indptr)
    item_degrees = np.bincount(data.user_items.indices, minlength=data.n_items)
    info: dict[str, Any] = {
        "name": data.name,
        "source": data.report.source,
        "feedback": data.feedback,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": data.n_interactions,
        "density": data.density,
        "has_timestamps": data.timestamps is not None,
        "has_ratings": data.ratings is not None,
        "median_interactions_per_user": float(np.median(degrees)),
        "median_interactions_per_item": float(np.median(item_degrees)),
        "share_users_with_at_most_2": float(np.mean(degrees <= 2)),
        "report": _report_for_command_line(data),
    }
    if data.ratings is not None and len(data.ratings):
        info["rating_range"] = [float(data.ratings.min()), float(data.ratings.max())]
        if len(np.unique(data.user_items.data[:10_000])) > 1:
            info["hint"] = (
                "Ratings are kept as interaction weights; pass --threshold X to keep only "
                "ratings >= X as positives (recommended for explicit feedback)."
            )
    return info


def _cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    # A wrong configuration is named before a large file is read.
    config = _parse_params(args.params)
    model = make_recommender(args.algorithm, config, random_state=args.seed)
    data = _load(args)
    split = _split(data, args)
    started = time.perf_counter()
    model.fit(split.train)
    fit_time = time.perf_counter() - started
    # Items seen but not liked (ratings below the threshold) are no candidates.
    result = evaluate(
        model, split.train, split.test, k=args.k, exclude=split.train.seen_nonpositive
    )
    return {
        "data": data.name,
        "algorithm": args.algorithm,
        "config": getattr(model, "effective_config_", config),
        "split": _split_summary(split, args),
        "fit_time": fit_time,
        "test": result.mean,
        "n_users_evaluated": result.n_users_evaluated,
    }


def _cmd_tune(args: argparse.Namespace) -> dict[str, Any]:
    data = _load(args)
    split = _split(data, args)
    started = time.perf_counter()
    tuned = tune(
        args.algorithm,
        split.train,
        n_trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        study_name=args.study_name,
        seed=args.seed,
        k=args.k,
        show_progress=args.progress,
    )
    search_time = time.perf_counter() - started

    # Refit the best and the default configuration on the whole training split, then test.
    best = make_recommender(args.algorithm, tuned.best_config, random_state=args.seed)
    best.fit(split.train)
    default = make_recommender(args.algorithm, random_state=args.seed).fit(split.train)
    return {
        "data": data.name,
        "algorithm": args.algorithm,
        "study_name": tuned.study_name,
        "n_trials_complete": tuned.n_complete,
        "n_trials_failed": tuned.n_failed,
        "n_trials_repeated": tuned.n_repeats,
        "search_time": search_time,
        "best_config": tuned.best_config,
        "validation": {tuned.metric: tuned.best_score},
        "test": evaluate(best, split.train, split.test, k=args.k).mean,
        "test_default_config": evaluate(default, split.train, split.test, k=args.k).mean,
        "split": _split_summary(split, args),
    }


def _cmd_select(args: argparse.Namespace) -> dict[str, Any]:
    data = _load(args)
    rec = MetaRecommender(
        meta_model=args.meta_model, segments=args.segments, random_state=args.seed
    )
    if args.segments is None:
        selection = rec.select(data)
        return {"data": data.name, **selection.to_dict(top=args.top)}
    table = rec.select_segments(data)
    return {
        "data": data.name,
        **rec.selection_.to_dict(top=args.top),
        "segments": _segment_records(table),
    }


def _segment_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per segment: its rule, size, choice and predicted NDCG@10."""
    columns = ["segment", "rule", "n_users", "algorithm", "config", "predicted_ndcg@10"]
    records = table[columns].to_dict(orient="records")
    for record in records:
        record["config"] = json.loads(record["config"])
    return records


def _cmd_fit(args: argparse.Namespace) -> dict[str, Any]:
    out = _out_folder(args.out, "the fitted model")
    data = _load(args)
    if (out / "metarecommender.json").is_file():
        print(f"metarec: replacing the model saved in {str(out)!r}.", file=sys.stderr)
    if args.trials and not args.progress:
        print(
            f"metarec: choosing, then a warm-started search of {args.trials} trials on "
            f"{data.n_interactions:,} interactions; --progress shows a bar.",
            file=sys.stderr,
        )
    rec = MetaRecommender(
        meta_model=args.meta_model,
        n_trials=args.trials,
        min_gain=args.min_gain,
        timeout=args.timeout,
        storage=args.storage,
        segments=args.segments,
        random_state=args.seed,
        show_progress=args.progress,
    ).fit(data)
    rec.save(args.out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    if size > _LARGE_MODEL_BYTES:
        # EASE keeps an n_items x n_items matrix: a catalogue of 10,000 items is 400 MB.
        print(
            f"metarec: the saved model takes {size / 1e6:,.0f} MB in {str(out)!r}.", file=sys.stderr
        )
    result: dict[str, Any] = {
        "data": data.name,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": data.n_interactions,
        "algorithm": rec.algorithm_,
        "config": rec.config_,
        "predicted_ndcg@10": rec.predicted_ndcg(),
        "selection_seconds": rec.selection_.seconds,
        "fit_seconds": rec.fit_seconds_,
        "out_of_range_features": sorted(rec.selection_.out_of_range),
        "loading_report": data.report.to_dict()["counts"],
        "seen_nonpositive_never_recommended": int(rec.seen_nonpositive_.nnz),
        "saved_to": str(args.out),
    }
    if rec.tuning_ is not None:
        result["search"] = {
            "n_trials_complete": rec.tuning_.n_complete,
            "n_trials_failed": rec.tuning_.n_failed,
            # Queued trials another process had enqueued too; they ended without a fit.
            "n_trials_repeated": rec.tuning_.n_repeats,
            "best_validation_ndcg@10": rec.tuning_.best_score,
            "study_name": rec.tuning_.study_name,
            "queued_skipped_for_time": [
                {"algorithm": algorithm, "config": config}
                for algorithm, config in rec.tuning_.skipped
            ],
        }
        if rec.search_gain_ is not None:
            gain = rec.search_gain_
            result["search"]["kept_meta_model_pick"] = (rec.algorithm_, rec.config_) == (
                rec.selection_.best.algorithm,
                rec.selection_.best.config,
            )
            result["search"]["gain_over_pick"] = gain.difference
            result["search"]["gain_standard_error"] = gain.standard_error
    if rec.segments_ is not None:
        result["segments"] = _segment_records(rec.segments_)
    # In the meta-model's order; the estimates are a separate prediction, so they need
    # not decrease down the list.
    result["top_algorithms"] = [
        {
            "rank": rank,
            "algorithm": row["algorithm"],
            "predicted_ndcg@10": round(float(row["predicted_ndcg@10"]), 4),
        }
        for rank, (_, row) in enumerate(rec.selection_.algorithms().head(5).iterrows(), 1)
    ]
    # A taste of the output: the lists of the first few users.
    sample = rec.recommend(data.user_ids[:3], k=5)
    result["example_recommendations"] = _with_titles(sample, args).to_dict(orient="records")
    return result


def _cmd_recommend(args: argparse.Namespace) -> dict[str, Any]:
    rec = MetaRecommender.load(args.model_dir)
    users = _read_user_ids(args.users, rec.user_map_)
    table = rec.recommend(users, k=args.k, exclude_seen=not args.include_seen)
    if rec.segments_ is not None:  # which segment and algorithm served each list
        serving = rec.serving(users).drop_duplicates("user_id")
        table = table.merge(serving, on="user_id", how="left")
    return {"recommendations": table}


def _cmd_build_corpus(args: argparse.Namespace) -> dict[str, Any]:
    if args.out:  # checked now, not after the whole build
        _out_folder(args.out, "the labels")
    plan = _parse_cuts(args.cuts) if args.cuts else DEFAULT_TASK_PLAN
    for name in args.datasets:  # every name now, not in each worker after a long wait
        locate_dataset(name)
    datasets = [(name, _family(name)) for name in args.datasets]
    tasks = make_tasks(
        datasets,
        plan=plan,
        seeds=tuple(args.seeds),
        max_interactions=args.max_interactions,
        max_items=args.max_items,
    )
    algorithms = args.algorithms or ALGORITHM_NAMES
    if args.status:
        status = build_status(args.storage, tasks, algorithms=algorithms, n_configs=args.configs)
        if status.trials_orphaned:
            print(
                f"metarec: {status.trials_orphaned} trial(s) were running in processes of this "
                "host that are gone; rerun the build to run them again.",
                file=sys.stderr,
            )
        if status.trials_lost:
            print(
                f"metarec: {status.trials_lost} configuration(s) lost: every try of them "
                "died (out of memory?); rerun the build with --retry-lost to try them again.",
                file=sys.stderr,
            )
        return {"n_tasks": len(tasks), **status.to_dict()}
    cores = os.cpu_count() or 1
    print(
        f"metarec: {args.workers} worker process(es) on {cores} core(s); every fit of a "
        "build uses one thread, so that no label depends on the number of workers"
        + (f" (--workers {cores} uses every core)" if args.workers < cores else ""),
        file=sys.stderr,
    )
    labels = build_labels(
        tasks,
        algorithms=algorithms,
        n_configs=args.configs,
        storage=args.storage,
        workers=args.workers,
        loader=load_dataset,
        show_progress=args.progress,
        retry_lost=args.retry_lost,
    )
    result: dict[str, Any] = {"n_tasks": len(tasks), **labels.provenance}
    if args.out:
        result["saved_to"] = str(labels.save(args.out))
    return result


def _cmd_train_meta(args: argparse.Namespace) -> dict[str, Any]:
    _out_folder(args.out, "the meta-model")
    labels = LabelSet.load(args.labels)
    model = MetaModel(random_state=args.seed).fit(labels)
    model.save(args.out)
    return {
        "n_tasks": model.n_training_tasks_,
        "n_candidates": len(model.candidates_),
        "algorithms": model.algorithms_,
        "saved_to": str(args.out),
    }


# -- helpers -------------------------------------------------------------------------------
def _out_folder(text: str, what: str) -> Path:
    """The ``--out`` folder, created and tried at once: refused before any work starts."""
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise BadInput(f"`--out` {text!r} is a file; give a folder for {what}.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".metarec-write-probe"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise BadInput(
            f"`--out` {text!r} cannot be written ({err.strerror or err}); give a folder you "
            f"can write to for {what}."
        ) from err
    return out


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``low``, refused before any work starts."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _failed(args: argparse.Namespace, message: str, status: int, *, what: str) -> int:
    """Report a failed command on stderr (and, with --json, as JSON on stdout)."""
    print(f"metarec: {what}: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": message, "kind": what, "exit_status": int(status)}, indent=2))
    return status


_TIMEOUT_HELP = (
    "seconds after which the search starts no new trial (the trial running then, and the "
    "final fit, still finish)"
)


def _positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds > 0, got {text} (leave the option out for "
            "no limit)"
        )
    return value


def _non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
    *,
    reads_files: bool = True,
) -> None:
    """Warnings as one line for people at a terminal, without source file and code."""
    text = _for_command_line(str(message)) if reads_files else str(message)
    print(f"metarec: warning: {text}", file=sys.stderr)


def _parse_cuts(specs: Sequence[str]) -> list[tuple[str, float]]:
    kinds = TASK_KINDS
    plan = []
    for spec in specs:
        kind, _, size = spec.partition(":")
        try:
            value = float(size) if size else (1.0 if kind == "full" else float("nan"))
        except ValueError:
            value = float("nan")
        if kind not in kinds or not value > 0:
            raise DataError(
                f"--cuts {spec!r} is not KIND:SIZE with KIND one of {', '.join(kinds)} and "
                "SIZE a positive number (a fraction for users/items, a count otherwise), "
                "e.g. users:0.5 or kcore:5."
            )
        try:
            Task("check", "check", kind, value)
        except ValueError as err:
            raise DataError(f"--cuts {spec!r}: {err}") from err
        plan.append((kind, value))
    return plan


def _family(name: str) -> str:
    info = DATASETS.get(name)
    return info.family if info is not None else Path(name).stem


def _read_user_ids(spec: str, user_map: IdMap) -> np.ndarray:
    """User ids from a comma-separated list or a file (one id per line), typed as trained."""
    path = Path(spec)
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a long list of ids is too long a name for a file
        is_file = False
    if is_file:
        raw = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    elif "/" in spec or path.suffix in (".txt", ".csv", ".tsv"):
        raise BadInput(
            f"`--users` {spec!r} looks like a file but does not exist; give an existing file "
            "with one user id per line, or comma-separated ids."
        )
    else:
        raw = [part.strip() for part in spec.split(",") if part.strip()]
    if not raw:
        if is_file:
            raise BadInput(
                f"`--users` file {spec!r} holds no user id; write one id per line, or give "
                "comma-separated ids."
            )
        raise BadInput(f"`--users` names no user: got {spec!r}.")
    if user_map.ids.dtype.kind in "iu":
        # Integer ids in training: an id written as the readers write integers (no sign
        # but "-", no leading zero) is that integer; "001" stays text, as in a data file.
        return np.array([int(v) if _CANONICAL_INT.fullmatch(v) else v for v in raw], dtype=object)
    return np.array(raw, dtype=object)


def _with_titles(table: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    if not args.demo:
        return table
    titles = load_item_titles("demo")
    return table.assign(title=[titles.get(i, "") for i in table["item_id"]])


def _load(args: argparse.Namespace) -> Interactions:
    if args.demo and args.data:
        raise BadInput("Give either a DATA path or --demo, not both.")
    if not args.demo and not args.data:
        raise BadInput(
            "No data given: pass a dataset folder or CSV file as DATA, or --demo for the "
            "embedded MovieTweetings sample."
        )
    threshold: Any = "default"
    if args.threshold is not None:
        threshold = None if args.threshold.lower() == "none" else _float(args.threshold)
    options: dict[str, Any] = {
        name: value
        for name in ("sep", "encoding", "encoding_errors", "duplicates")
        if (value := getattr(args, name)) is not None
    }
    if args.columns is not None:
        options["columns"] = [field.strip() or None for field in args.columns.split(",")]
    if args.header not in (None, "auto"):
        options["header"] = args.header == "yes"
    if options and (args.demo or not Path(args.data).is_file()):
        raise BadInput(
            f"--{next(iter(options)).replace('_', '-')} applies to a CSV/TSV file; "
            "dataset folders and names are read in their documented format."
        )
    return load_dataset("demo" if args.demo else args.data, positive_threshold=threshold, **options)


def _split(data: Interactions, args: argparse.Namespace) -> Any:
    if args.split == "random":
        return random_holdout_split(data, test_fraction=args.test_fraction, random_state=args.seed)
    if args.split == "temporal":
        return temporal_split(data, test_fraction=args.test_fraction)
    return leave_last_k_out_split(data, k=args.leave_out)


def _split_summary(split: Any, args: argparse.Namespace) -> dict[str, Any]:
    summary = {"kind": args.split, "seed": args.seed, "test_fraction": args.test_fraction}
    summary["stats"] = dict(split.stats)
    return summary


def _parse_params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInput(
            f"`--params` must be a JSON object such as '{{\"n_factors\": 64}}'; got {text!r} "
            f"({err.msg} at character {err.pos})."
        ) from err
    if not isinstance(params, dict):
        raise BadInput(f"`--params` must be a JSON object; got {type(params).__name__}.")
    return params


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"`--threshold` must be a number or 'none'; got {text!r}.") from None


#: Saved models above this size are pointed out after `fit`.
_LARGE_MODEL_BYTES = 100_000_000
_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")

#: Python arguments that messages of the library name as fixes, and what a command-line
#: user passes instead (the first matching spelling of each argument counts).
_COMMAND_LINE_SPELLING = {
    "`sep": "--sep",
    "`columns": "--columns (e.g. --columns user_id,item_id,rating)",
    "`header=True`": "--header yes",
    "`encoding=": "--encoding",
    "`encoding_errors": "--encoding-errors",
    "`duplicates": "--duplicates",
    "`positive_threshold=None`": "--threshold none",
    "`positive_threshold": "--threshold X (ratings >= X become positives)",
    "`data_root": "the environment variable METAREC_DATA",
    "`rating_col`": "--columns naming that field 'rating'",
    "`test_fraction`": "--test-fraction",
}


def _for_command_line(text: str) -> str:
    """Add the command-line spelling of the Python arguments a message names as fixes."""
    flags: list[str] = []
    named: set[str] = set()
    for python, flag in _COMMAND_LINE_SPELLING.items():
        argument = python.strip("`").split("=")[0]
        if python in text and argument not in named:
            named.add(argument)
            flags.append(flag)
    if not flags:
        return text
    return f"{text} On the command line: {'; '.join(flags)}."


def _report_for_command_line(data: Interactions) -> dict[str, Any]:
    """The loading report, its messages naming flags where they name Python arguments."""
    report = data.report.to_dict()
    report["messages"] = {k: _for_command_line(v) for k, v in report["messages"].items()}
    return report


def _message(err: BaseException, reads_files: bool = True) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    text = text or type(err).__name__
    return _for_command_line(text) if reads_files else text


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _format_mapping(result: dict[str, Any], indent: str = "") -> str:
    lines = []
    for key, value in result.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            table = pd.DataFrame(value).to_string(index=False, float_format=lambda x: f"{x:.4g}")
            lines.append(f"{indent}{key}:")
            lines.extend(f"{indent}  {line}" for line in table.splitlines())
        elif isinstance(value, dict):
            if not value:
                continue
            lines.append(f"{indent}{key}:")
            lines.append(_format_mapping(value, indent + "  "))
        elif isinstance(value, float):
            lines.append(f"{indent}{key}: {value:.4g}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(line for line in lines if line)


# -- parser --------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="metarec",
        description="Choose, configure and tune classical recommenders for your data.",
    )
    parser.add_argument("--version", action="version", version=f"metarec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., Any], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler, formatter=_format_mapping, reads_files=True)
        sub.add_argument(
            "data",
            nargs="?",
            metavar="DATA",
            help="a shared dataset folder, a dataset name, or a CSV/TSV file "
            "(user_id,item_id[,rating or weight[,timestamp]])",
        )
        sub.add_argument("--demo", action="store_true", help="use the embedded demo dataset")
        sub.add_argument(
            "--threshold",
            metavar="X",
            help="ratings >= X are positives; 'none' keeps every rating as a weight "
            "(default: the dataset's documented threshold)",
        )
        reading = sub.add_argument_group("reading a CSV/TSV file (ignored for dataset folders)")
        reading.add_argument("--sep", help="field separator (default: sniffed)")
        reading.add_argument(
            "--columns",
            metavar="ROLES",
            help="comma-separated role of each field: user_id, item_id, rating, weight, "
            "timestamp, or an empty name to skip a field (e.g. user_id,item_id,,rating)",
        )
        reading.add_argument(
            "--header",
            choices=("auto", "yes", "no"),
            help="whether the first line names the columns (default: auto, guessed from "
            "known names such as user_id and from numeric columns)",
        )
        reading.add_argument("--encoding", help="text encoding (default: utf-8)")
        reading.add_argument(
            "--encoding-errors",
            choices=("strict", "replace", "skip"),
            help="undecodable bytes: stop (strict, default), replace them, or skip the line",
        )
        reading.add_argument(
            "--duplicates",
            choices=("sum", "last", "max", "mean"),
            help="how repeated (user, item) rows merge (default: sum of weights, last rating)",
        )
        _common_flags(sub)
        return sub

    command("info", _cmd_info, "Describe a dataset and what loading it dropped or merged.")
    for name, handler, help_text in (
        ("evaluate", _cmd_evaluate, "Fit one configuration and report test ranking metrics."),
        ("tune", _cmd_tune, "Tune one algorithm with Optuna, then report validation and test."),
    ):
        sub = command(name, handler, help_text)
        sub.add_argument("--algorithm", required=True, choices=ALGORITHM_NAMES)
        sub.add_argument("--split", choices=("random", "temporal", "leave-last"), default="random")
        sub.add_argument("--test-fraction", type=float, default=0.2)
        sub.add_argument(
            "--leave-out", type=_int_at_least(1), default=1, help="k of the leave-last split"
        )
        sub.add_argument("--seed", type=int, default=42)
        sub.add_argument(
            "--k", type=_int_at_least(1), default=10, help="list length of the metrics"
        )
        if name == "evaluate":
            sub.add_argument("--params", help="configuration as a JSON object")
        else:
            sub.add_argument("--trials", type=_int_at_least(1), default=30)
            sub.add_argument("--timeout", type=_positive_float, help=_TIMEOUT_HELP)
            sub.add_argument(
                "--storage",
                help="journal file path or database URL (default: in memory)",
            )
            sub.add_argument("--study-name")
            sub.add_argument("--progress", action="store_true", help="progress bar on stderr")

    sub = command("select", _cmd_select, "Rank algorithms and configurations for the data.")
    sub.add_argument("--meta-model", metavar="DIR", help="a trained meta-model folder")
    sub.add_argument("--top", type=_int_at_least(1), default=10, help="candidates to list")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument(
        "--segments",
        choices=("auto", "activity"),
        help="choose per user segment: learned rules (auto) or by training interactions "
        "(activity: none, 1-4, 5-19, 20-99, 100+)",
    )

    sub = command("fit", _cmd_fit, "Choose, optionally tune, fit and save a recommender.")
    sub.add_argument(
        "--trials",
        type=_int_at_least(0),
        default=0,
        help="warm-started search trials (default 0: fit the meta-model's pick, no search)",
    )
    sub.add_argument(
        "--min-gain",
        type=_non_negative_float,
        default=1.0,
        help="standard errors a searched configuration must gain over the meta-model's "
        "pick, on a validation split the search did not use, to replace it (default 1; "
        "0: the best validation score wins)",
    )
    sub.add_argument("--timeout", type=_positive_float, help=_TIMEOUT_HELP)
    sub.add_argument("--storage", help="journal file path or database URL of the search")
    sub.add_argument(
        "--out",
        default="metarec-model",
        metavar="DIR",
        help="folder for the fitted model (default: %(default)s)",
    )
    sub.add_argument("--meta-model", metavar="DIR", help="a trained meta-model folder")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--progress", action="store_true", help="progress bar on stderr")
    sub.add_argument(
        "--segments",
        choices=("auto", "activity"),
        help="choose per user segment: learned rules (auto) or by training interactions "
        "(activity: none, 1-4, 5-19, 20-99, 100+)",
    )

    sub = commands.add_parser(
        "recommend",
        help="Print top-k lists of a fitted model as CSV (user_id,item_id,rank,score).",
        description="Print top-k lists of a fitted model as CSV (user_id,item_id,rank,score).",
    )
    sub.set_defaults(handler=_cmd_recommend, formatter=_format_mapping)
    sub.add_argument("model_dir", metavar="DIR", help="folder written by `metarec fit`")
    sub.add_argument(
        "--users", required=True, help="comma-separated user ids, or a file with one id per line"
    )
    sub.add_argument("--k", type=_int_at_least(1), default=10)
    sub.add_argument(
        "--include-seen",
        action="store_true",
        help="allow items of the user's history, and items rated below the threshold",
    )
    _common_flags(sub)

    sub = commands.add_parser(
        "build-corpus",
        help="Build meta-training labels: Optuna searches over tasks cut from datasets.",
        description="Build meta-training labels: Optuna searches over tasks cut from datasets.",
    )
    sub.set_defaults(handler=_cmd_build_corpus, formatter=_format_mapping)
    sub.add_argument("datasets", nargs="+", metavar="DATASET", help="dataset names or folders")
    sub.add_argument(
        "--storage", required=True, help="journal file path or database URL; rerun to resume"
    )
    sub.add_argument("--out", metavar="DIR", help="write the labels table here")
    sub.add_argument(
        "--configs", type=_int_at_least(1), default=10, help="configurations per task and algorithm"
    )
    sub.add_argument("--algorithms", nargs="+", choices=ALGORITHM_NAMES)
    sub.add_argument("--seeds", type=int, nargs="+", default=[0])
    sub.add_argument(
        "--cuts",
        nargs="+",
        metavar="KIND:SIZE",
        help="tasks cut from every dataset, e.g. users:0.5 kcore:5 popular:1000 (kinds: "
        "users, items, kcore, popular, full); default: "
        + " ".join(f"{kind}:{size:g}" for kind, size in DEFAULT_TASK_PLAN),
    )
    sub.add_argument("--max-interactions", type=_int_at_least(1), default=40_000)
    sub.add_argument("--max-items", type=_int_at_least(1), default=3_000)
    sub.add_argument(
        "--workers",
        type=_int_at_least(1),
        default=os.cpu_count() or 1,
        help="worker processes on this machine (default: one per core); the same command "
        "on another machine against the same --storage URL joins the build",
    )
    sub.add_argument(
        "--status",
        action="store_true",
        help="print how far the build has come (read from --storage) and exit",
    )
    sub.add_argument(
        "--retry-lost",
        action="store_true",
        help="try once more each configuration whose every try died (its worker ran out "
        "of memory, say); --status counts them as lost",
    )
    sub.add_argument(
        "--progress", action="store_true", help="a line per finished study and a progress bar"
    )
    _common_flags(sub)

    sub = commands.add_parser(
        "train-meta",
        help="Train the LightGBM meta-model on a labels folder.",
        description="Train the LightGBM meta-model on a labels folder.",
    )
    sub.set_defaults(handler=_cmd_train_meta, formatter=_format_mapping)
    sub.add_argument("labels", metavar="LABELS", help="folder written by build-corpus --out")
    sub.add_argument("--out", required=True, metavar="DIR")
    sub.add_argument("--seed", type=int, default=0)
    _common_flags(sub)
    for sub in commands.choices.values():
        sub.set_defaults(command_parser=sub)
    return parser


def _common_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub.add_argument("--debug", action="store_true", help="show tracebacks")


if __name__ == "__main__":
    sys.exit(main())
