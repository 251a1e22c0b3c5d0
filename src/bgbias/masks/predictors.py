"""Mask predictors: U2Net/U2NetP through onnxruntime (rembg's exact pre- and post-processing,
batched when a GPU runs it) and GrabCut as the fallback that needs no weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import BgbiasError
from ..registry import Registry

U2NET_SIZE = (320, 320)
U2NET_MEAN = np.array([0.485, 0.456, 0.406])
U2NET_STD = np.array([0.229, 0.224, 0.225])


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


class U2NetPredictor(MaskPredictor):
    """U2Net as rembg runs it (``remove(..., only_mask=True)``): RGB resized to 320x320 with
    Lanczos, divided by its maximum, ImageNet mean/std; first output min-max normalised per
    image, to uint8, resized back with Lanczos."""

    def __init__(
        self,
        model_file: str | Path,
        device: str = "cpu",
        batch_size: int | None = None,
        threads: int | None = None,
    ):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BgbiasError(
                    "device cuda needs onnxruntime-gpu (`pip install onnxruntime-gpu`)"
                )
            providers = ["CUDAExecutionProvider", *providers]
        self.batch_size = batch_size or (16 if device.startswith("cuda") else 1)
        model = str(model_file) if self.batch_size == 1 else str(dynamic_batch_model(model_file))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def preprocess(self, image: Image.Image) -> np.ndarray:
        array = np.array(image.convert("RGB").resize(U2NET_SIZE, Image.Resampling.LANCZOS))
        array = array / max(np.max(array), 1e-6)
        return ((array - U2NET_MEAN) / U2NET_STD).transpose(2, 0, 1).astype(np.float32)

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = []
        for start in range(0, len(inputs), self.batch_size):
            batch = np.stack(inputs[start : start + self.batch_size])
            outputs.extend(self.session.run(None, {self.input_name: batch})[0][:, 0])
        return outputs

    def postprocess(self, output: np.ndarray, size: tuple[int, int]) -> Image.Image:
        low, high = np.min(output), np.max(output)
        scaled = (output - low) / (high - low) if high > low else np.zeros_like(output)
        mask = Image.fromarray((scaled.clip(0, 1) * 255).astype("uint8"), mode="L")
        return mask.resize(size, Image.Resampling.LANCZOS)


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


PREDICTORS: Registry = Registry("mask model")


def _u2net(name: str):
    def build(device: str, batch_size: int | None, threads: int | None) -> MaskPredictor:
        from .models import model_path

        return U2NetPredictor(model_path(name), device, batch_size, threads)

    return build


PREDICTORS.register("u2net", _u2net("u2net"))
PREDICTORS.register("u2netp", _u2net("u2netp"))
PREDICTORS.register("grabcut", lambda device, batch_size, threads: GrabCutPredictor())
