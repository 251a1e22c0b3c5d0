"""Named background photo sets (the paper's), provisioned into the user cache and verified.

``bgbias backgrounds fetch paper`` takes every photo a set's manifest lists (split, file name,
size and sha256, shipped in the package) from the authors' repository, or from a local copy
(``--from DIR``), checks its sha256 and installs it atomically into
``$BGBIAS_HOME/backgrounds/<name>/{val,test}``; photos already installed are kept, so a killed
fetch resumes. A config's ``backgrounds.source = "paper"`` resolves to that folder.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..cache import cache_dir
from ..downloads import AssetError, download, verify_file
from ..errors import DataError
from ..io import copy_file, image_files, remove_leftovers, remove_tree
from ..progress import progress_bar
from ..registry import Registry

log = logging.getLogger(__name__)
URL_ENV = "BGBIAS_BACKGROUNDS_URL"  # another mirror: a template with {split} and {name}


@dataclass(frozen=True)
class BackgroundFile:
    split: str
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BackgroundSet:
    """A set of background photos: ``manifest`` (a JSON file in ``bgbias/assets``) lists them;
    ``url`` is where each one is downloaded from (a template with ``{split}`` and ``{name}``)."""

    name: str
    description: str
    manifest: str
    url: str

    def files(self) -> list[BackgroundFile]:
        return _read_manifest(self.manifest)

    @property
    def folder(self) -> Path:
        return cache_dir("backgrounds", self.name)


@functools.lru_cache
def _read_manifest(filename: str) -> list[BackgroundFile]:
    text = resources.files("bgbias").joinpath("assets", filename).read_text()
    return [BackgroundFile(**entry) for entry in json.loads(text)["files"]]


class MissingBackgroundsError(DataError):
    """A named background set that is not (completely) installed."""


BACKGROUND_SETS: Registry[BackgroundSet] = Registry("background set")
PAPER = BACKGROUND_SETS.register(
    "paper",
    BackgroundSet(
        "paper",
        "the paper's 100 val + 100 test background photos (Unsplash)",
        "paper_backgrounds.json",
        "https://raw.githubusercontent.com/LSX-UniWue/background-bias-in-dml/"
        "629df667cb77638ccb1eb9feda52700f53ad2c3c/data/unsplash_backgrounds/{split}/{name}",
    ),
)


def installed_folder(name: str) -> Path:
    """The folder of set ``name`` (``val/`` and ``test/``), with every photo of its manifest in
    place (checked by size; the sha256 was checked when it was installed)."""
    spec = BACKGROUND_SETS.get(name)
    files = spec.files()
    missing = [f for f in files if not _size_matches(spec.folder / f.split / f.name, f.size)]
    if missing:
        raise MissingBackgroundsError(
            f"{spec.description}: {len(missing)} of {len(files)} photos are not installed in "
            f"{spec.folder}; run `bgbias backgrounds fetch {name}` (or `--from DIR` with a "
            "local copy)"
        )
    return spec.folder


def resolve_source(source: str | os.PathLike | None) -> str | Path | None:
    """A config's ``backgrounds.source``: a set name becomes its installed folder (raising with
    the fetch command when it is not installed); ``procedural``, None and folders pass."""
    if source is not None and str(source) in BACKGROUND_SETS:
        return installed_folder(str(source))
    return source


def fetch_background_set(
    name: str,
    source: str | os.PathLike | None = None,
    url: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Install every photo of set ``name``, from the local copy ``source`` (a folder with
    ``val/`` and ``test/``) or downloaded from ``url`` (default: ``$BGBIAS_BACKGROUNDS_URL`` or
    the set's own); each is checked against the manifest's sha256 before it lands. Photos that
    fail are reported together at the end; the others stay installed (run again to resume)."""
    spec = BACKGROUND_SETS.get(name)
    template = url or os.environ.get(URL_ENV) or spec.url
    if source is None and not ("{split}" in template and "{name}" in template):
        raise AssetError(f"background URL template {template!r} needs {{split}} and {{name}}")
    source = Path(source) if source is not None else None
    files = spec.files()
    if source is not None:
        absent = sorted({f.split for f in files if not (source / f.split).is_dir()})
        if absent:
            raise AssetError(
                f"{source}: no {'/, '.join(absent)}/ folder (expected a copy of the {name} "
                "set, with val/ and test/ photo folders)"
            )
    for split in {f.split for f in files}:
        (spec.folder / split).mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    already = 0
    with FileLock(str(spec.folder / ".fetch.lock")):
        for split in {f.split for f in files}:
            _remove_partial_downloads(spec.folder / split, {f.name for f in files})
        bar = progress_bar(len(files), f"fetching {name} backgrounds", unit="photo")
        for entry in files:
            target = spec.folder / entry.split / entry.name
            try:
                if _installed(target, entry):
                    already += 1
                elif source is not None:
                    origin = source / entry.split / entry.name
                    verify_file(origin, sha256=entry.sha256, size=entry.size)
                    copy_file(origin, target)
                else:
                    link = template.format(split=entry.split, name=entry.name)
                    download(link, target, entry.sha256)
            except AssetError as exc:
                failures.append(str(exc))
            bar.update(1)
        bar.close()
    if source is not None:
        _warn_about_extras(source, files)
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise AssetError(
            f"{len(failures)} of {len(files)} {name} photos failed, the other "
            f"{len(files) - len(failures)} are installed: {failures[0]}{more}"
        )
    return {
        "name": name,
        "folder": str(spec.folder),
        "photos": len(files),
        "installed": len(files) - already,
        "already_installed": already,
    }


def describe_background_sets() -> list[str]:
    """One line per set: how many of its photos are installed (sha256-checked), and where."""
    lines = ["procedural  seeded textures, made on demand (the generated presets' backgrounds)"]
    for name in BACKGROUND_SETS:
        spec = BACKGROUND_SETS.get(name)
        files = spec.files()
        good = sum(_installed(spec.folder / f.split / f.name, f) for f in files)
        state = "installed" if good == len(files) else f"{good} of {len(files)} photos installed"
        lines.append(f"{name:11} {spec.description}: {state} in {spec.folder}")
    return lines


def _size_matches(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _installed(path: Path, entry: BackgroundFile) -> bool:
    try:
        verify_file(path, sha256=entry.sha256, size=entry.size)
    except AssetError:
        return False
    return True


def _remove_partial_downloads(folder: Path, names: set[str]) -> None:
    """What a killed fetch left: our temporary files and pooch's (``tmp*``, never a photo)."""
    remove_leftovers(folder)
    for path in folder.iterdir():
        if path.name.startswith("tmp") and path.name not in names:
            remove_tree(path)


def _warn_about_extras(source: Path, files: list[BackgroundFile]) -> None:
    listed = {(f.split, f.name) for f in files}
    for split in sorted({f.split for f in files}):
        if not (source / split).is_dir():
            continue
        extra = [p.name for p in image_files(source / split) if (split, p.name) not in listed]
        if extra:
            log.warning(
                "%s: %d photo(s) not in the manifest were left out, e.g. %s",
                source / split,
                len(extra),
                extra[0],
            )


__all__ = [
    "BACKGROUND_SETS",
    "BackgroundSet",
    "MissingBackgroundsError",
    "describe_background_sets",
    "fetch_background_set",
    "installed_folder",
    "resolve_source",
]
