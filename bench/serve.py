"""Search serving: `bgbias serve` query latency against the bare model forward + faiss search
(the limit), `bgbias index` build throughput against bare embedding, and a burst of 1,000 mixed
good and bad uploads (statuses, server memory before and after).

    python bench/serve.py [--items 10000] [--build-items 512] [--model efficientnet_lite0]
        [--serve-args "--batch-window-ms 5 --max-batch 16"]

The served index has --items entries: the real embeddings of --build-items generated images
(indexed with `bgbias index`, the build being timed) repeated with a little noise, since faiss's
flat search costs the same whatever the values. Queries are real photos (the 20 shared CUB
images) when ../shared has them. The background-removal rows need u2netp
(`bgbias mask-weights fetch u2netp`; $BGBIAS_HOME is honoured) and are skipped without it.
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_BACKGROUNDS, time_ms  # noqa: E402

print = partial(print, flush=True)  # noqa: A001 - progress of a long run, also when piped

from bgbias.adapters import load_embedder  # noqa: E402
from bgbias.data.datasets import FolderDataset  # noqa: E402
from bgbias.data.generate import BenchmarkConfig, generate_benchmark  # noqa: E402
from bgbias.data.transforms import PairedTransform  # noqa: E402
from bgbias.errors import BgbiasError  # noqa: E402
from bgbias.evaluation import embed  # noqa: E402
from bgbias.removal import load_remover  # noqa: E402
from bgbias.search.build import build_index  # noqa: E402
from bgbias.search.images import model_input, model_view, open_photo, view_pixels  # noqa: E402
from bgbias.search.index import SearchIndex, write_index_files  # noqa: E402

SHARED_CUB = SHARED_BACKGROUNDS.parent / "gt_masks" / "cub200"
K = 10
TARGETS = {1: " (target <= 1.3)", 8: " (target <= 4)"}  # of p50 over the one-query limit


def query_photos(folder: str | None) -> tuple[list[bytes], str]:
    if folder is not None:
        photos = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        return [p.read_bytes() for p in photos], f"{len(photos)} JPEGs of {folder}"
    photos = sorted(SHARED_CUB.glob("*_image.jpeg")) if SHARED_CUB.is_dir() else []
    if photos:
        return [p.read_bytes() for p in photos], f"{len(photos)} CUB-200-2011 photos (../shared)"
    rng = np.random.default_rng(0)
    out = []
    for _ in range(20):
        small = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out, "20 synthetic 500x375 JPEGs"


def bench_build(embedder, root: Path, tmp: Path, repeats: int) -> Path:
    """Images/s of `bgbias index` vs bgbias.evaluation.embed (decode + transform + forward, the
    loop a user writes) vs forward alone on decoded tensors; returns the built index."""
    dataset = FolderDataset.open(root, "all", PairedTransform(embedder.recipe, False))
    n = len(dataset)
    module = embedder.module
    tensors = [dataset[i][0] for i in range(n)]
    with torch.inference_mode():
        module(torch.stack(tensors[:2]))  # warm up
    bare, build, forward = [], [], []
    for r in range(repeats):
        start = time.perf_counter()
        embed(module, dataset, batch_size=32, progress=False)
        bare.append(n / (time.perf_counter() - start))
        out = tmp / f"build-{r}"
        start = time.perf_counter()
        build_index(embedder, root, out, device="cpu", progress=False)
        build.append(n / (time.perf_counter() - start))
        start = time.perf_counter()
        with torch.inference_mode():
            for b in range(0, n, 32):
                module(torch.stack(tensors[b : b + 32]))
        forward.append(n / (time.perf_counter() - start))
    bare_rate, build_rate, forward_rate = map(statistics.median, (bare, build, forward))
    print(f"\n== index build, {n} images, {embedder.spec}, medians of {repeats} ==")
    print(f"forward only (decoded tensors):        {forward_rate:7.1f} images/s")
    print(f"bare embedding (evaluation.embed):     {bare_rate:7.1f} images/s")
    print(f"bgbias index (+thumbnails, chunks, faiss, manifest): {build_rate:7.1f} images/s")
    print(f"ratio: index build / bare embedding {build_rate / bare_rate:.2f} (target >= 0.8)")
    print(f"ratio: index build / forward only {build_rate / forward_rate:.2f}")
    return tmp / "build-0"


def grow_index(source: Path, out: Path, items: int) -> SearchIndex:
    """An index of ``items`` entries from the real ones of ``source``, repeated with noise."""
    small = SearchIndex.load(source)
    real = np.concatenate([small.embedding(p) for p in range(len(small))])
    rng = np.random.default_rng(0)
    rows = np.arange(items) % len(small)
    embeddings = real[rows] + rng.normal(0, 0.02, size=(items, real.shape[1])).astype(np.float32)
    (out / "thumbs").mkdir(parents=True)
    entries = []
    for i, row in enumerate(rows):
        item = small.items[row]
        os.link(small.thumbnail_path(row), out / "thumbs" / f"{i:07d}.jpg")
        entries.append({"id": f"item-{i:05d}", "label": item["label"], "thumb": f"{i:07d}.jpg"})
    write_index_files(out, embeddings, entries, small.manifest["model"])
    return SearchIndex.load(out)


def in_thread(fn):
    """``fn()`` run in a new thread, as the server runs a query (in a worker thread, where
    torch's OpenMP threads behave differently from the main thread's on a busy machine)."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=fn()))
    thread.start()
    thread.join()
    return result["value"]


def bench_limit(embedder, index, photos, remover, repeats: int = 5) -> float:
    """Median ms of (mask model +) forward + faiss search of one query, decoding excluded."""
    recipe = embedder.recipe
    times = []
    for photo in photos:
        view = model_view(open_photo(photo, draft_size=recipe.resize), recipe)
        ready = model_input(view_pixels(view), recipe.normalization)[None]

        def one(view=view, ready=ready):
            x = ready
            if remover is not None:
                x = model_input(remover.remove(view, recipe), recipe.normalization)[None]
            with torch.inference_mode():
                index.search(embedder(x), K)

        times.append(time_ms(one, repeats, warmup=1))
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(index: Path, port: int, extra: list[str]) -> subprocess.Popen:
    import httpx

    command = [
        sys.executable,
        "-m",
        "bgbias",
        "serve",
        str(index),
        "--port",
        str(port),
        "--max-upload-mb",
        "2",
        "--device",
        "cpu",
        *extra,
    ]
    server = subprocess.Popen(command)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def post(client, url: str, data: bytes, **params):
    return client.post(
        f"{url}/search", params={"k": K, **params}, files={"image": ("q.jpg", data, "image/jpeg")}
    )


def bench_latency(url, photos, clients: int, per_client: int, remove: bool) -> list[float]:
    import httpx

    latencies: list[float] = []
    lock = threading.Lock()

    def client_loop(worker: int) -> None:
        with httpx.Client(timeout=120) as client:
            post(client, url, photos[worker % len(photos)], remove_background=remove)  # warm
            for i in range(per_client):
                data = photos[(worker * per_client + i) % len(photos)]
                start = time.perf_counter()
                response = post(client, url, data, remove_background=remove)
                elapsed = (time.perf_counter() - start) * 1000
                assert response.status_code == 200, response.text
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def rss_mb(pid: int) -> dict[str, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def bad_uploads(photo: bytes) -> list[tuple[str, bytes, int]]:
    buffer = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buffer, "PNG")
    rng = np.random.default_rng(1)
    return [
        ("not an image", b"plain text, not a photo" * 10, 415),
        ("truncated", photo[: len(photo) // 2], 400),
        ("100 megapixels", buffer.getvalue(), 413),
        ("empty", b"", 400),
        ("oversized (3 MB > 2 MB)", rng.integers(0, 255, 3 * 2**20, dtype=np.uint8).tobytes(), 413),
    ]


def bench_burst(url, pid: int, photos, remove_ok: bool, total: int, clients: int = 8) -> None:
    import httpx

    kinds = [("good", p, 200, False) for p in photos[:3]]
    if remove_ok:
        kinds.append(("good, background removed", photos[3], 200, True))
    kinds += [(name, data, status, False) for name, data, status in bad_uploads(photos[0])]
    before = rss_mb(pid)
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    start = time.perf_counter()

    def client_loop(worker: int) -> None:
        with httpx.Client(timeout=120) as client:
            for i in range(worker, total, clients):
                name, data, status, remove = kinds[i % len(kinds)]
                try:
                    got = post(client, url, data, remove_background=remove).status_code
                    key = f"{name}: {got}" + ("" if got == status else f" (expected {status})")
                except httpx.HTTPError as exc:
                    key = f"{name}: client error {type(exc).__name__}"
                with lock:
                    outcomes[key] = outcomes.get(key, 0) + 1

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    after = rss_mb(pid)
    healthy = httpx.get(f"{url}/health").status_code == 200
    print(f"\n== burst: {total} requests, {clients} clients, {seconds:.1f} s ==")
    for key in sorted(outcomes):
        print(f"  {outcomes[key]:4d} x {key}")
    print(
        f"server RSS before {before['VmRSS']:.0f} MB, after {after['VmRSS']:.0f} MB, "
        f"peak {after['VmHWM']:.0f} MB; healthy after: {healthy}"
    )


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--items", type=int, default=10_000, help="entries of the served index")
    parser.add_argument("--build-items", type=int, default=512, help="images indexed for real")
    parser.add_argument("--build-repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40, help="per latency configuration")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--queries", help="folder of JPEG query photos (default: shared CUB)")
    parser.add_argument("--serve-args", default="", help="more `bgbias serve` options, quoted")
    args = parser.parse_args()
    print(
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs; load average "
        f"{os.getloadavg()[0]:.1f} (a shared machine: compare ratios, not absolute numbers)"
    )
    embedder = load_embedder(args.model)
    try:
        remover = load_remover("u2netp")
    except BgbiasError as exc:
        remover = None
        print(f"background removal rows skipped: {exc}")
    with tempfile.TemporaryDirectory(prefix="bgbias-bench-serve-") as tmp:
        tmp = Path(tmp)
        classes = max(3, args.build_items // 20)
        config = BenchmarkConfig(train_classes=classes - 2, val_classes=1, test_classes=1)
        generate_benchmark(tmp / "catalogue", config)
        small = bench_build(embedder, tmp / "catalogue", tmp, args.build_repeats)
        index = grow_index(small, tmp / "served", args.items)
        photos, source = query_photos(args.queries)
        print(f"\n== queries: {source}; index {len(index)} x {index.dim}, flat, k={K} ==")
        port = free_port()
        server = start_server(tmp / "served", port, shlex.split(args.serve_args))
        url = f"http://127.0.0.1:{port}"
        try:
            for remove in (False, True) if remover is not None else (False,):
                mask = remover if remove else None
                # the limit is measured before and after the clients' runs (the server idle),
                # and the ratios use the mean: a load change during the run moves both sides
                first = in_thread(lambda mask=mask: bench_limit(embedder, index, photos, mask))
                runs = {}
                for clients in (1, 8):
                    per_client = max(2, args.requests // clients)
                    runs[clients] = (
                        per_client,
                        percentiles(bench_latency(url, photos, clients, per_client, remove)),
                    )
                last = in_thread(lambda mask=mask: bench_limit(embedder, index, photos, mask))
                limit = (first + last) / 2
                what = "with background removal (u2netp)" if remove else "no background removal"
                print(
                    f"limit, {what}: model forward{' + mask model' if remove else ''} + faiss "
                    f"search = {limit:.1f} ms (median; {first:.1f} before the clients, "
                    f"{last:.1f} after)"
                )
                for clients, (per_client, (p50, p95)) in runs.items():
                    print(
                        f"  {clients} client(s), {clients * per_client} requests: "
                        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"
                    )
                    tag = f"{'removal' if remove else 'plain'}, {clients} client(s)"
                    target = "" if remove else TARGETS[clients]
                    print(f"ratio: p50 / limit ({tag}) {p50 / limit:.2f}{target}")
            bench_burst(url, server.pid, photos, remover is not None, args.burst)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
