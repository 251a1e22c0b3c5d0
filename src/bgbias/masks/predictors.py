"""Mask predictors: U2Net/U2NetP with rembg's exact pre- and post-processing on two engines
(onnxruntime, or bgbias's PyTorch port of the same weights), and GrabCut as the fallback that
needs no weights. ``build_predictor`` picks model, engine and device by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..devices import resolve_device
from ..errors import BgbiasError, ConfigError
from ..ort import import_onnxruntime
from ..registry import Registry

U2NET_SIZE = (320, 320)
U2NET_MEAN = np.array([0.485, 0.456, 0.406])
U2NET_STD = np.array([0.229, 0.224, 0.225])
GPU_BATCH_SIZE = 16
# Measured on a 2-core CPU shared with other jobs (bench/masks.py, 20 CUB images, U2NetP):
# onnxruntime 0.74 images/s, torch 0.23; idle, torch was up to 1.3x faster per image, but its
# OpenMP threads collapse when the cores are shared (with the decode threads or other work),
# onnxruntime's do not, and its masks are exactly rembg's. On a GPU: torch (no onnxruntime-gpu).
CPU_BACKEND = "onnxruntime"

log = logging.getLogger(__name__)


class MaskPredictor:
    """``preprocess(image) -> input`` (thread-safe, CPU), ``predict(inputs) -> outputs`` (a batch),
    ``postprocess(output, size) -> L mask`` (thread-safe)."""

    batch_size = 1

    def preprocess(self, image: Image.Image):
        return image

    def predict(self, inputs: list) -> list:
        raise NotImplementedError

    def postprocess(self, output, size: tuple[int, int]) -> Image.Image:
        return output


class U2NetProcessing(MaskPredictor):
    """U2Net as rembg runs it (``remove(..., only_mask=True)``): RGB resized to 320x320 with
    Lanczos, divided by its maximum, ImageNet mean/std; first output min-max normalised per
    image, to uint8, resized back with Lanczos."""

    @staticmethod
    def resized(image: Image.Image) -> np.ndarray:
        """-> (320, 320, 3) uint8 RGB, resized with Lanczos as rembg does."""
        return np.asarray(image.convert("RGB").resize(U2NET_SIZE, Image.Resampling.LANCZOS))

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """-> (3, 320, 320) float32."""
        array = self.resized(image)
        array = array / max(np.max(array), 1e-6)
        return ((array - U2NET_MEAN) / U2NET_STD).transpose(2, 0, 1).astype(np.float32)

    def postprocess(self, output: np.ndarray, size: tuple[int, int]) -> Image.Image:
        """(320, 320) float saliency -> mode L mask of ``size`` (width, height)."""
        low, high = np.min(output), np.max(output)
        scaled = (output - low) / (high - low) if high > low else np.zeros_like(output)
        mask = Image.fromarray((scaled.clip(0, 1) * 255).astype("uint8"), mode="L")
        return mask.resize(size, Image.Resampling.LANCZOS)


class OnnxU2NetPredictor(U2NetProcessing):
    """The ONNX file run by onnxruntime. A CUDA device without onnxruntime's CUDA provider (no
    ``onnxruntime-gpu``, or its CUDA libraries fail to load) runs on the CPU with a warning."""

    def __init__(
        self,
        model_file: str | Path,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        threads: int | None = None,
    ):
        ort = import_onnxruntime()
        device = resolve_device(device)
        providers: list = ["CPUExecutionProvider"]
        if device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                cuda = ("CUDAExecutionProvider", {"device_id": device.index or 0})
                providers = [cuda, *providers]
            else:
                log.warning(
                    "device %s: this onnxruntime has no CUDA provider (`pip install "
                    "onnxruntime-gpu`, or use --backend torch); running on the CPU",
                    device,
                )
        elif device.type != "cpu":
            log.warning("device %s: onnxruntime runs on the CPU (--backend torch does not)", device)
        on_gpu = len(providers) > 1
        self.batch_size = batch_size or (GPU_BATCH_SIZE if on_gpu else 1)
        model = str(model_file) if self.batch_size == 1 else str(dynamic_batch_model(model_file))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(model, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/RuntimeError types
            if not on_gpu:
                raise
            log.warning("device %s: onnxruntime's CUDA provider failed (%s)", device, exc)
            self.session = ort.InferenceSession(model, options, providers=providers[-1:])
        running = self.session.get_providers()[0]
        if on_gpu and running != "CUDAExecutionProvider":
            log.warning(
                "device %s: onnxruntime could not load its CUDA provider (`--backend torch` "
                "needs none); running on the CPU",
                device,
            )
        self.device = device if running == "CUDAExecutionProvider" else torch.device("cpu")
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = []
        for start in range(0, len(inputs), self.batch_size):
            batch = np.stack(inputs[start : start + self.batch_size])
            outputs.extend(self.session.run(None, {self.input_name: batch})[0][:, 0])
        return outputs


def dynamic_batch_model(model_file: str | Path) -> Path:
    """A copy of the ONNX model whose batch axis is free (the shipped graph fixes it at 1; its
    resize sizes are computed from shapes, so any batch runs). Made once, beside the original."""
    model_file = Path(model_file)
    target = model_file.with_name(model_file.stem + ".dynamic-batch.onnx")
    if target.is_file():
        return target
    try:
        import onnx
    except ImportError:
        raise BgbiasError(
            "batched mask inference needs `pip install onnx` (or run with --batch-size 1)"
        ) from None
    from ..io import atomic_write

    model = onnx.load(str(model_file))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    with atomic_write(target, "wb") as handle:
        handle.write(model.SerializeToString())
    return target


def rembg_normalise(pixels: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32, channels-last: divided by each image's
    maximum, then ImageNet mean/std (``U2NetProcessing.preprocess`` on the device)."""
    x = pixels.permute(0, 3, 1, 2).float()  # a channels-last view of (B, H, W, 3)
    x = x / x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    mean, std = (
        torch.tensor(v, dtype=torch.float32, device=x.device) for v in (U2NET_MEAN, U2NET_STD)
    )
    return ((x - mean[:, None, None]) / std[:, None, None]).contiguous(
        memory_format=torch.channels_last
    )


PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchU2NetPredictor(U2NetProcessing):
    """bgbias's PyTorch U2Net (``bgbias.masks.u2net``) with the ONNX file's weights: channels-last
    (measured faster on CPU), batched, under fp16 autocast on a GPU by default. Workers only
    resize (uint8); scaling and mean/std run on the device in float32 (rembg: float64, then
    float32; the inputs differ by < 5e-7), which saves 4 ms of CPU and 3/4 of the copy per image.

    ``precision``: "auto" (fp16 on CUDA, else fp32), "fp32", "fp16" or "bf16" (autocast).
    ``threads`` sets torch's intra-op threads for the whole process (``torch.set_num_threads``).
    """

    def __init__(
        self,
        model_file: str | Path,
        architecture: str,
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        threads: int | None = None,
        precision: str = "auto",
    ):
        from .u2net import load_u2net

        self.device = resolve_device(device)
        on_gpu = self.device.type == "cuda"
        if precision == "auto":
            precision = "fp16" if on_gpu else "fp32"
        if precision not in PRECISIONS:
            raise ConfigError(f"--precision {precision!r}: expected auto, fp32, fp16 or bf16")
        self.precision = precision
        if threads:
            torch.set_num_threads(threads)
        self.batch_size = batch_size or (GPU_BATCH_SIZE if on_gpu else 1)
        model = load_u2net(architecture, model_file)
        self.model = model.to(self.device, memory_format=torch.channels_last)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """-> (320, 320, 3) uint8, resized as rembg does (normalised on the device)."""
        return self.resized(image)

    @torch.inference_mode()
    def saliency(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB -> (B, H, W) float32 saliency on ``self.device``."""
        x = rembg_normalise(pixels.to(self.device, non_blocking=True))
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            return self.model(x)[:, 0].float()

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """(320, 320, 3) uint8 inputs -> (320, 320) float32 saliency maps."""
        outputs = []
        for start in range(0, len(inputs), self.batch_size):
            pixels = torch.from_numpy(np.stack(inputs[start : start + self.batch_size]))
            if self.device.type == "cuda":
                pixels = pixels.pin_memory()
            outputs.extend(self.saliency(pixels).cpu().numpy())
        return outputs


class GrabCutPredictor(MaskPredictor):
    """OpenCV GrabCut seeded with a centred rectangle (10% margin): no weights needed, much
    worse than U2Net; binary masks."""

    def __init__(self, iterations: int = 5):
        try:
            import cv2
        except ImportError:
            raise BgbiasError(
                "--model grabcut needs `pip install opencv-python-headless`"
            ) from None
        self.cv2 = cv2
        self.iterations = iterations

    def predict(self, inputs: list[Image.Image]) -> list[np.ndarray]:
        cv2 = self.cv2
        outputs = []
        for image in inputs:
            array = np.array(image.convert("RGB"))[:, :, ::-1].copy()
            h, w = array.shape[:2]
            rect = (
                max(1, w // 10),
                max(1, h // 10),
                max(1, w - 2 * (w // 10)),
                max(1, h - 2 * (h // 10)),
            )
            mask = np.zeros((h, w), np.uint8)
            background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(
                array, mask, rect, background, foreground, self.iterations, cv2.GC_INIT_WITH_RECT
            )
            outputs.append(
                np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
            )
        return outputs

    def postprocess(self, output: np.ndarray, size: tuple[int, int]) -> Image.Image:
        return Image.fromarray(output, mode="L")


# A U2Net engine: (model name, device, batch_size, threads, precision) -> predictor
U2NET_ENGINES: Registry[Callable[..., MaskPredictor]] = Registry("mask backend")


@U2NET_ENGINES.register("onnxruntime")
def _onnxruntime_engine(name, device, batch_size, threads, precision) -> MaskPredictor:
    from .models import model_path

    if precision not in ("auto", "fp32"):
        raise ConfigError(f"--precision {precision} needs --backend torch (onnxruntime runs fp32)")
    return OnnxU2NetPredictor(model_path(name), device, batch_size, threads)


@U2NET_ENGINES.register("torch")
def _torch_engine(name, device, batch_size, threads, precision) -> MaskPredictor:
    from .models import model_path

    return TorchU2NetPredictor(model_path(name), name, device, batch_size, threads, precision)


def default_backend(device: torch.device) -> str:
    return CPU_BACKEND if device.type == "cpu" else "torch"


# A mask model: (backend, device, batch_size, threads, precision) -> predictor
PREDICTORS: Registry[Callable[..., MaskPredictor]] = Registry("mask model")


def _u2net(name: str) -> Callable[..., MaskPredictor]:
    def build(backend, device, batch_size, threads, precision) -> MaskPredictor:
        if backend == "auto":
            backend = default_backend(device)
        return U2NET_ENGINES.get(backend)(name, device, batch_size, threads, precision)

    return build


def _grabcut(backend, device, batch_size, threads, precision) -> MaskPredictor:
    if backend != "auto":
        raise ConfigError(f"--backend {backend}: grabcut runs on OpenCV; use --backend auto")
    return GrabCutPredictor()


PREDICTORS.register("u2net", _u2net("u2net"))
PREDICTORS.register("u2netp", _u2net("u2netp"))
PREDICTORS.register("grabcut", _grabcut)


def build_predictor(
    model: str = "u2net",
    backend: str = "auto",
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    threads: int | None = None,
    precision: str = "auto",
) -> MaskPredictor:
    """The predictor of ``model`` on ``backend`` ("auto": torch on a GPU, the measured faster
    engine on the CPU) and ``device`` ("auto": the first CUDA GPU torch sees, else the CPU;
    see ``bgbias.devices``)."""
    build = PREDICTORS.get(model)
    if backend != "auto" and backend not in U2NET_ENGINES:
        raise ConfigError(
            f"--backend {backend!r}: expected auto, {', '.join(U2NET_ENGINES.names())}"
        )
    return build(backend, resolve_device(device), batch_size, threads, precision)
