"""The one downloader: pinned hashes, atomic targets, clear errors; against a local server."""

import hashlib

import pytest

from bgbias.downloads import AssetError, download, fetch_bytes, hash_prefix, verify_file
from tests.helpers import serve_folder

PAYLOAD = b"weights, or a photo: bytes with a known sha256\n" * 500
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / "good.bin").write_bytes(PAYLOAD)
    (folder / "tampered.bin").write_bytes(PAYLOAD[:-1] + b"!")
    (folder / "short.bin").write_bytes(PAYLOAD[: len(PAYLOAD) // 2])  # honest but truncated
    (folder / "cut.bin").write_bytes(PAYLOAD)  # served cut off mid-way
    with serve_folder(folder, cut_short=("cut.bin",)) as url:
        yield url


def test_download_verifies_and_keeps_a_good_file(served, tmp_path):
    target = tmp_path / "cache" / "file.bin"
    assert download(f"{served}/good.bin", target, SHA) == target
    assert target.read_bytes() == PAYLOAD
    stamp = target.stat().st_mtime_ns
    download(f"{served}/good.bin", target, SHA)  # already there: kept, not downloaded again
    assert target.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("name", ["tampered.bin", "short.bin", "cut.bin"])
def test_a_bad_download_is_an_error_and_leaves_nothing(served, tmp_path, name):
    target = tmp_path / "cache" / "file.bin"
    with pytest.raises(AssetError, match=rf"{name}: .*(does not match|download failed)"):
        download(f"{served}/{name}", target, SHA)
    leftovers = list(target.parent.iterdir()) if target.parent.exists() else []
    assert leftovers == []  # no partial or temporary file either


def test_a_damaged_cached_file_is_replaced(served, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(PAYLOAD[:100])  # a truncated earlier copy
    download(f"{served}/good.bin", target, SHA)
    assert target.read_bytes() == PAYLOAD


def test_unreachable_server_is_one_line(tmp_path):
    with pytest.raises(AssetError, match=r"download failed \(") as info:
        download("http://127.0.0.1:9/x.bin", tmp_path / "x.bin", SHA)
    assert "\n" not in str(info.value)
    with pytest.raises(AssetError, match="download failed"):
        fetch_bytes("http://127.0.0.1:9/index/")


def test_missing_file_on_the_server(served, tmp_path):
    with pytest.raises(AssetError, match=r"nope.bin: download failed \(404"):
        download(f"{served}/nope.bin", tmp_path / "x.bin", SHA)


def test_fetch_bytes(served):
    assert fetch_bytes(f"{served}/good.bin") == PAYLOAD


def test_hash_prefix_follows_torch_hub_names():
    assert hash_prefix("bn_inception-52deb4733.pth") == "52deb4733"
    assert hash_prefix("resnet50-19c8e357.pth") == "19c8e357"
    assert hash_prefix("model-2024.pth") is None
    assert hash_prefix("weights.pth") is None


def test_verify_file(tmp_path):
    path = tmp_path / f"w-{SHA[:10]}.pth"
    path.write_bytes(PAYLOAD)
    verify_file(path, sha256=SHA, prefix=hash_prefix(path.name), size=len(PAYLOAD))
    with pytest.raises(AssetError, match="bytes, expected"):
        verify_file(path, size=len(PAYLOAD) + 1)
    path.write_bytes(PAYLOAD + b"x")
    with pytest.raises(AssetError, match=rf"w-{SHA[:10]}.pth: sha256 .* is not the pinned"):
        verify_file(path, sha256=SHA)
    with pytest.raises(AssetError, match=f"does not start with {SHA[:10]}, the hash in its name"):
        verify_file(path, prefix=SHA[:10])
    with pytest.raises(AssetError, match="file not found"):
        verify_file(tmp_path / "missing.pth", sha256=SHA)
