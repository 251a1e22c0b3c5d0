"""Every file bgbias downloads goes through one downloader that checks a pinned hash: pooch.

pooch streams into a temporary file beside the target and renames it into place only after the
hash matched, so a killed, truncated or tampered download never leaves a file that looks
finished; a target already there with the right hash is kept (resumable). Local files are
checked with :func:`verify_file`, against a full sha256 or the hash prefix in their name
(torch.hub's ``name-<sha256 prefix>.pth`` convention).
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path

from .errors import BgbiasError
from .io import sha256_file
from .progress import bars_enabled, progress_bar

log = logging.getLogger(__name__)
TIMEOUT_S = 60
CHUNK_BYTES = 1 << 16
# torch.hub.HASH_REGEX, with at least 8 hex digits so that "model-2024.pth" is no hash
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")


class AssetError(BgbiasError):
    """A file that cannot be downloaded, or does not match its pinned hash."""


def hash_prefix(name: str) -> str | None:
    """The sha256 prefix a file name carries (``bn_inception-52deb4733.pth`` -> ``52deb4733``),
    or None."""
    match = HASH_IN_NAME.search(name)
    return match.group(1) if match else None


def verify_file(
    path: str | os.PathLike,
    sha256: str | None = None,
    prefix: str | None = None,
    size: int | None = None,
) -> None:
    """Raise AssetError naming ``path`` unless it exists and matches ``size``, ``sha256`` and the
    sha256 ``prefix`` (each checked when given)."""
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: file not found")
    if size is not None and path.stat().st_size != size:
        raise AssetError(
            f"{path}: {path.stat().st_size} bytes, expected {size} (truncated or another file)"
        )
    if sha256 is None and prefix is None:
        return
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise AssetError(f"{path}: sha256 {digest} is not the pinned {sha256}")
    if prefix is not None and not digest.startswith(prefix):
        raise AssetError(
            f"{path}: sha256 {digest} does not start with {prefix}, the hash in its name"
        )


def download(
    url: str,
    target: str | os.PathLike,
    sha256: str,
    progress: bool = False,
    headers: dict[str, str] | None = None,
) -> Path:
    """Download ``url`` to ``target`` and check its ``sha256``; a target already there with that
    hash is kept. Raises AssetError (one line) on any network error or hash mismatch; nothing is
    left at ``target`` then."""
    import pooch
    import requests

    pooch.get_logger().setLevel(logging.WARNING)  # bgbias reports its own progress
    target = Path(target)
    drawn = progress and bars_enabled()
    bar = progress_bar(None, f"downloading {target.name}", unit="B") if drawn else None
    downloader = pooch.HTTPDownloader(
        progressbar=bar if bar is not None else False,
        chunk_size=CHUNK_BYTES,
        timeout=TIMEOUT_S,
        headers=headers or {},
    )
    try:
        pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}",
            fname=target.name,
            path=target.parent,
            downloader=downloader,
        )
    except ValueError as exc:  # pooch: the downloaded file's hash does not match
        reason = _first_line(exc).split(". Deleted")[0]
        raise AssetError(f"{url}: {reason}; nothing was kept") from None
    except (requests.RequestException, OSError) as exc:
        raise AssetError(f"{url}: download failed ({_first_line(exc)})") from None
    finally:
        if bar is not None:
            bar.close()
    return target


def fetch_bytes(url: str, headers: dict[str, str] | None = None) -> bytes:
    """The body of a small page (a package index's JSON), through the same downloader."""
    import pooch
    import requests

    buffer = io.BytesIO()
    downloader = pooch.HTTPDownloader(timeout=TIMEOUT_S, headers=headers or {})
    try:
        downloader(url, buffer, None)
    except (requests.RequestException, OSError) as exc:
        raise AssetError(f"{url}: download failed ({_first_line(exc)})") from None
    return buffer.getvalue()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["AssetError", "download", "fetch_bytes", "hash_prefix", "verify_file"]
