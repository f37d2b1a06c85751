"""A resumable run's record in `<run-dir>/state.json`: progress, the settings that define the run, and every
command that worked on it.

Why settings live here: a run resumed across sessions is one run, so its loss weighting, seed, teachers,
auxiliary heads and parent network must not silently change with whatever the resume command happened to say,
and the model card must name the command that started the run, not the last `--resume`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path
from typing import Any

# What a run *is* (fixed when it starts); epochs, patience, time budget, threads and folders belong to one command.
RUN_SETTINGS = (
    "data",
    "arch",
    "batch_size",
    "lr",
    "size",
    "limit",
    "ferplus_weight",
    "balance_power",
    "seed",
    "teacher",
    "teacher_weight",
    "extra_faces",
    "aux",
    "aux_weight",
    "init_from",
    "new_head",
    "split_file",
    "average_from",
    "cutmix",
    "mixup",
    "precision",
    "train_on_val",
)
PATH_SETTINGS = ("data", "init_from", "split_file", "extra_faces")


class RunState:
    """Epoch counter, best validation accuracy, accumulated training seconds, settings and commands of a run."""

    def __init__(self, path: Path, fresh: bool = False) -> None:
        self.path = path
        self.data: dict[str, Any] = (
            json.loads(path.read_text())
            if path.is_file() and not fresh
            else {"epoch": 0, "best": 0.0, "best_epoch": 0, "seconds": 0.0}
        )

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, self.path)

    def record_command(self, command: str) -> None:
        self.data.setdefault("commands", []).append(command)


def command_line(tokens: list[str]) -> str:
    """The command as a user would retype it."""
    return "facelens train " + shlex.join(tokens)


def given_options(tokens: list[str]) -> set[str]:
    """Destinations of the options written on the command line (so a default is not mistaken for a choice)."""
    return {tok.split("=", 1)[0][2:].replace("-", "_") for tok in tokens if tok.startswith("--")}


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run-defining settings of `args`, as JSON values."""
    settings: dict[str, Any] = {}
    for name in RUN_SETTINGS:
        value = getattr(args, name, None)
        if name == "teacher":
            value = [str(t) for t in value or []]
        elif isinstance(value, Path):
            value = str(value)
        settings[name] = value
    return settings


def adopt_settings(args: argparse.Namespace, stored: dict[str, Any], given: set[str]) -> list[str]:
    """Sets `args` to the run's stored settings; returns one note per option the resume command asked to change
    (a resumed run keeps its own settings). Runs recorded before settings were stored keep `args` as given."""
    notes = []
    for name in RUN_SETTINGS:
        if name not in stored:
            continue
        value = stored[name]
        if name == "teacher":
            value = [Path(t) for t in value]
        elif name in PATH_SETTINGS and value is not None:
            value = Path(value)
        if name in given and getattr(args, name) != value:
            shown = ",".join(map(str, value)) if name == "teacher" else value
            notes.append(f"--{name.replace('_', '-')} stays {shown} (the run's own)")
        setattr(args, name, value)
    return notes
