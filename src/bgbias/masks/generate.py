"""The mask job: one PNG per image under MASKS, mirroring IMAGES' relative paths.

Resumable (finished masks are skipped; every PNG is written to a temporary file and renamed, so
a killed job never leaves a half-written mask), shardable across machines (``shard=(k, n)``
takes every n-th image from the k-th), decoding and resizing overlapped with inference on a
thread pool. A corrupt image is not fatal to the run: failures are listed in
``MASKS/masks-failures-KofN.json`` and the report is not ``ok``. Temporary files a killed run
left behind are removed by the next run of the same shard.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from ..data.layout import mask_file
from ..data.mask_sanity import (
    SanityLimits,
    SuspectMask,
    check_masks,
    mask_problems,
    write_suspects,
)
from ..decoding import load_image
from ..errors import BgbiasError, DataError
from ..io import ensure_writable_dir, image_files, save_image, write_json
from ..progress import progress_bar
from .predict import prepare
from .predictors import PREDICTORS, MaskPredictor, build_predictor


@dataclass
class MaskJobReport:
    images: int = 0  # in this shard
    already_done: int = 0
    written: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {"image", "error"}
    failures_file: str | None = None  # where ``failed`` is written when it is not empty
    stale_temporaries_removed: int = 0
    seconds: float = 0.0
    # masks of suspect shape (bgbias.data.mask_sanity), with their problems; this run's and
    # those an earlier run of the shard found among the masks it kept
    suspects: dict[str, list[str]] = field(default_factory=dict)
    suspects_file: str | None = None
    suspects_sheet: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        summary = asdict(self) | {"failed": len(self.failed), "suspects": len(self.suspects)}
        return summary | {"images_per_second": round(self.images_per_second, 3)}


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise BgbiasError(f"--shard must be K/N, e.g. 0/4; got {text!r}") from None
    if not 0 <= k < n:
        raise BgbiasError(f"--shard K/N needs 0 <= K < N; got {text!r}")
    return k, n


MODEL_RECORD = "masks-model.json"  # in each mask folder: the model that made its masks


def list_images(images_dir: Path, masks_dir: Path | None = None) -> list[str]:
    """The images under ``images_dir``, less any mask folder inside it (``masks_dir``, or one
    holding a mask job's record): masks are never masked again."""
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: image folder not found")
    skip = {masks_dir.resolve()} if masks_dir is not None else set()
    mask_folder: dict[Path, bool] = {}

    def in_mask_folder(path: Path) -> bool:
        for folder in path.parents:
            if folder == images_dir:
                return False
            if folder not in mask_folder:
                mask_folder[folder] = folder.resolve() in skip or _is_mask_folder(folder)
            if mask_folder[folder]:
                return True
        return False

    return [
        str(p.relative_to(images_dir)) for p in image_files(images_dir) if not in_mask_folder(p)
    ]


def _is_mask_folder(folder: Path) -> bool:
    return (folder / MODEL_RECORD).is_file() or any(folder.glob("masks-report-*of*.json"))


def recorded_model(masks_dir: Path) -> str | None:
    """The model that made the masks in ``masks_dir``: its record, else (a folder from before
    the record) what a shard's report says."""
    sources = [masks_dir / MODEL_RECORD, *sorted(masks_dir.glob("masks-report-*of*.json"))]
    for source in sources:
        try:
            model = json.loads(source.read_text()).get("model")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(model, str):
            return model
    return None


def claim_for_model(masks_dir: Path, model: str) -> None:
    """Record ``model`` in ``masks_dir``, refusing a folder whose masks another model made: a
    rerun would keep those masks and report the new model as their maker."""
    found = recorded_model(masks_dir)
    if found is not None and found != model:
        raise BgbiasError(
            f"{masks_dir}: holds {found} masks; --model {model} would mix two models' masks in "
            f"one folder (write them to another folder, or delete this one to start over)"
        )
    if found is None:
        write_json(masks_dir / MODEL_RECORD, {"model": model})


def remove_stale_temporaries(masks_dir: Path, targets: set[Path]) -> int:
    """Delete the ``.NAME.*.tmp`` files ``atomic_write`` left for ``targets`` when a run was
    killed. Only this shard's targets: another shard may be writing its own right now."""
    removed = 0
    for folder, _, names in os.walk(masks_dir):
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                target = Path(folder) / name[1:].rsplit(".", 2)[0]  # .NAME.RANDOM.tmp
                if target in targets:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(Path(folder) / name)
                        removed += 1
    return removed


def generate_masks(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    model: str = "u2net",
    shard: tuple[int, int] = (0, 1),
    device: str = "auto",
    backend: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    precision: str = "auto",
    predictor: MaskPredictor | None = None,
    progress: bool = True,
    flip_check: bool = False,
    limits: SanityLimits | None = None,
) -> MaskJobReport:
    """Masks for every image under ``images_dir`` (of this shard) that has none yet.

    ``model``: u2net, u2netp or grabcut; ``backend``: auto, torch or onnxruntime and ``device``:
    auto, cpu, cuda or cuda:N (see ``build_predictor``); ``workers``: decode/encode threads
    (default: one per CPU core, at most 8); ``threads``: the engine's CPU threads;
    ``precision``: the torch engine's autocast (auto = fp16 on CUDA). A ``predictor`` replaces
    model/backend/device/batch_size/threads/precision.

    Every new mask is checked for a suspect shape (empty, nearly full, hugging the border, in
    many parts; with ``flip_check`` also against the mask of the mirrored photo, at twice the
    model cost): they are listed in ``MASKS/masks-suspects-KofN.json`` and drawn beside their
    photos in ``masks-suspects-KofN.png``.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    limits = limits or SanityLimits()
    k, n = shard
    files = list_images(images_dir, masks_dir)[k::n]
    report = MaskJobReport(images=len(files))
    report_file = masks_dir / f"masks-report-{k}of{n}.json"
    failures_file = masks_dir / f"masks-failures-{k}of{n}.json"
    suspects_name = f"masks-suspects-{k}of{n}"
    suspect_files = {masks_dir / f"{suspects_name}.json", masks_dir / f"{suspects_name}.png"}
    targets = {mask_file(masks_dir, f) for f in files} | {report_file, failures_file}
    targets |= suspect_files
    if predictor is None:
        PREDICTORS.get(model)  # an unknown model stops here, before the folder is touched
    ensure_writable_dir(masks_dir)  # fail before the model loads, not at the first mask
    claim_for_model(masks_dir, model)
    report.stale_temporaries_removed = remove_stale_temporaries(masks_dir, targets)
    todo = [f for f in files if not mask_file(masks_dir, f).is_file()]
    report.already_done = len(files) - len(todo)
    report.suspects = _kept_suspects(
        masks_dir / f"{suspects_name}.json", set(files) - set(todo), masks_dir, limits
    )
    if predictor is None:
        predictor = build_predictor(model, backend, device, batch_size, threads, precision)
    workers = workers or min(8, os.cpu_count() or 2)
    started = time.perf_counter()
    bar = progress_bar(len(todo), f"masks ({model})", unit="img", enabled=progress)

    def load(relative: str):
        """(size, model input, the mirrored photo's input or None)."""
        image = load_image(images_dir / relative)
        size, inputs = prepare(predictor, image)
        if not flip_check:
            return size, inputs, None
        return size, inputs, predictor.preprocess(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))

    def finish(relative: str, output, size, mirrored) -> list[str]:
        mask = predictor.postprocess(output, size)
        if mirrored is not None:
            mirrored = predictor.postprocess(mirrored, size)
        save_image(mask, mask_file(masks_dir, relative))
        return mask_problems(mask, limits, mirrored)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[str, Future]] = deque()
        writes: list[tuple[str, Future]] = []
        queue = iter(todo)
        lookahead = max(2 * predictor.batch_size, workers * 2)

        def refill() -> None:
            while len(pending) < lookahead:
                relative = next(queue, None)
                if relative is None:
                    return
                pending.append((relative, pool.submit(load, relative)))

        refill()
        while pending:
            batch = []
            while pending and len(batch) < predictor.batch_size:
                relative, future = pending.popleft()
                try:
                    batch.append((relative, *future.result()))
                except DataError as exc:
                    report.failed.append({"image": relative, "error": str(exc)})
                    bar.update(1)
            refill()  # decode the next images while the model runs
            if not batch:
                continue
            inputs = [item[2] for item in batch] + [item[3] for item in batch if flip_check]
            outputs = predictor.predict(inputs)
            mirrored = outputs[len(batch) :] if flip_check else [None] * len(batch)
            for (relative, size, *_), output, flipped in zip(
                batch, outputs[: len(batch)], mirrored, strict=True
            ):
                future = pool.submit(finish, relative, output, size, flipped)
                writes.append((relative, future))
            writes = _collect(writes, report, bar, wait=False)
        _collect(writes, report, bar, wait=True)
    bar.close()
    report.seconds = round(time.perf_counter() - started, 3)
    if report.failed:
        report.failures_file = str(failures_file)
        write_json(failures_file, {"images": str(images_dir), "failed": report.failed})
    else:  # an earlier run's list: its images were retried and have masks now
        failures_file.unlink(missing_ok=True)
    suspects = [
        SuspectMask(relative, str(mask_file(masks_dir, relative)), tuple(problems))
        for relative, problems in sorted(report.suspects.items())
    ]
    json_file, sheet = write_suspects(
        masks_dir,
        suspects,
        {relative: images_dir / relative for relative in report.suspects},
        limits,
        checked=len(files) - len(report.failed),
        name=suspects_name,
    )
    report.suspects_file, report.suspects_sheet = str(json_file), sheet and str(sheet)
    engine = {
        "model": model,
        "predictor": type(predictor).__name__,
        "device": str(getattr(predictor, "device", "cpu")),
    }
    write_json(report_file, report.to_dict() | engine)
    return report


def _collect(writes, report: MaskJobReport, bar, wait: bool):
    remaining = []
    for relative, future in writes:
        if not wait and not future.done():
            remaining.append((relative, future))
            continue
        try:
            problems = future.result()
            report.written += 1
            if problems:
                report.suspects[relative] = problems
        except (OSError, DataError) as exc:
            report.failed.append({"image": relative, "error": str(exc)})
        bar.update(1)
    return remaining


def _kept_suspects(
    listing: Path, kept: set[str], masks_dir: Path, limits: SanityLimits
) -> dict[str, list[str]]:
    """The suspects among the masks this run keeps: as an earlier run of the shard listed them,
    or (no readable list: masks made elsewhere) checked now."""
    if not kept:
        return {}
    try:
        earlier = json.loads(listing.read_text())["masks"]
        return {m["image"]: list(m["problems"]) for m in earlier if m["image"] in kept}
    except (OSError, ValueError, KeyError, TypeError):
        found = check_masks([(r, mask_file(masks_dir, r)) for r in sorted(kept)], limits)
        return {s.image: list(s.problems) for s in found}
