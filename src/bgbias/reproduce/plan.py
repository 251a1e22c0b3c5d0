"""The plan of a reproduction: one *cell* per matching preset, each a folder ``OUT/<preset>/``
holding its training run, results, state and log, and the ``bgbias`` command of each stage."""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import compose
from ..data.background_sets import resolve_source
from ..errors import ConfigError
from ..io import write_json
from ..presets import preset_names

STAGES = ("train", "evaluate", "attention")
CELL_FILE = "cell.json"
RESERVED = ("output_dir", "resume", "overwrite")  # the cell sets these itself


@dataclass(frozen=True)
class Cell:
    """One preset of the plan: its folder, the training overrides and the stages to run.

    ``run/`` is the training run folder, ``test.eval.json`` the evaluation (``repeats`` draws
    of the test backgrounds), ``attention/`` the attention scores (``attention_limit`` images,
    None: all), ``state.json`` where it stands and ``log.txt`` every stage's output.
    """

    preset: str
    folder: Path
    overrides: tuple[str, ...] = ()
    stages: tuple[str, ...] = STAGES
    repeats: int = 5
    attention_limit: int | None = None

    @property
    def root(self) -> Path:
        """OUT, the folder holding every cell (``OUT/<dataset>/<loss>/<mode>``)."""
        return self.folder.parents[len(self.preset.split("/")) - 1]

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def best(self) -> Path:
        return self.run_dir / "checkpoints" / "best.ckpt"

    @property
    def last(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    @property
    def evaluation(self) -> Path:
        return self.folder / "test.eval.json"

    @property
    def attention_dir(self) -> Path:
        return self.folder / "attention"

    @property
    def log(self) -> Path:
        return self.folder / "log.txt"

    def output(self, stage: str) -> Path:
        """The file whose presence (written last, atomically) says ``stage`` finished."""
        return {
            "train": self.best,
            "evaluate": self.evaluation,
            "attention": self.attention_dir / "summary.json",
        }[stage]

    def command(self, stage: str) -> list[str]:
        """The ``bgbias`` arguments of ``stage``: training resumes from its last checkpoint
        when a killed run left one, else starts afresh in its own folder."""
        if stage == "train":
            restart = "resume=true" if self.last.is_file() else "overwrite=true"
            return ["train", self.preset, f"output_dir={self.run_dir}", *self.overrides, restart]
        if stage == "evaluate":
            return [
                "evaluate",
                str(self.best),
                "--repeats",
                str(self.repeats),
                "--out",
                str(self.evaluation),
            ]
        limit = ["--limit", str(self.attention_limit)] if self.attention_limit else []
        return ["attention", str(self.best), "--out", str(self.attention_dir), *limit]

    def save(self) -> None:
        write_json(self.folder / CELL_FILE, asdict(self) | {"folder": str(self.folder)})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Cell:
        path = Path(folder) / CELL_FILE
        try:
            values: dict[str, Any] = json.loads(path.read_text())
            return cls(
                values["preset"],
                Path(values["folder"]),
                tuple(values["overrides"]),
                tuple(values["stages"]),
                int(values["repeats"]),
                values["attention_limit"],
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a readable reproduce cell ({exc})") from None


def parse_stages(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"train,evaluate"`` -> the stages in pipeline order; unknown names raise."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise ConfigError(
            f"--stages: {', '.join(unknown) or 'none'}; choose from {', '.join(STAGES)}"
        )
    return tuple(s for s in STAGES if s in names)


def plan_cells(
    pattern: str,
    out: str | os.PathLike,
    overrides: list[str] | tuple[str, ...] = (),
    stages: tuple[str, ...] = STAGES,
    repeats: int = 5,
    attention_limit: int | None = None,
) -> list[Cell]:
    """One cell per preset matching ``pattern`` (shell-style: ``cub200/*/*``), each config
    composed and validated now, and every photo set the cells use checked installed, so that
    a bad override or a missing download stops everything before anything runs."""
    names = [name for name in preset_names() if fnmatch.fnmatchcase(name, pattern)]
    if not names:
        raise ConfigError(f"no preset matches {pattern!r}; `bgbias list presets` prints them all")
    reserved = [o for o in overrides if o.split("=", 1)[0] in RESERVED]
    if reserved:
        raise ConfigError(f"{reserved[0]!r}: reproduce sets {', '.join(RESERVED)} itself")
    if repeats < 0 or (attention_limit is not None and attention_limit < 1):
        raise ConfigError("repeats must be >= 0 and the attention limit >= 1")
    out = Path(out)
    cells = []
    for name in names:
        cell = Cell(name, out / name, tuple(overrides), stages, repeats, attention_limit)
        config = compose(name, [*overrides, f"output_dir={cell.run_dir}"])
        if "train" in stages or ("evaluate" in stages and repeats > 0):
            resolve_source(config.backgrounds.source)  # attention scores use no backgrounds
        cells.append(cell)
    return cells


def find_cells(out: str | os.PathLike) -> list[Cell]:
    """Every cell under ``out`` (the folders holding a cell.json), in preset order."""
    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"{out}: no such folder")
    cells = [Cell.load(path.parent) for path in sorted(out.rglob(CELL_FILE))]
    if not cells:
        raise ConfigError(f"{out}: no reproduce cells here (make them with `bgbias reproduce`)")
    return cells
