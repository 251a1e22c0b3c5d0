"""U2Net and U2NetP (Qin et al., "U^2-Net: Going deeper with nested U-structure for salient object
detection", Pattern Recognition 2020) in PyTorch, for inference with the weights of rembg's ONNX
files.

The architecture follows the paper: six encoder stages of residual U-blocks (RSU-7, -6, -5, -4,
then two dilated RSU-4F), five decoder stages mirroring them, a 3x3 side output per stage and a
1x1 fusion of the six side outputs. The ONNX files were exported with batch norm folded into the
convolutions, so every conv here carries a bias and there is no BatchNorm layer; upsampling is
bilinear with ``align_corners=False`` (the files' Resize nodes: linear, pytorch_half_pixel),
max-pooling rounds up (``ceil_mode``), as in the files.

Weights are read from the sha256-checked ONNX file (``bgbias.masks.models.model_path``): the
files name only the side convs, so convs are matched by execution order, which ``nn.Module``
registration order below reproduces; every conv's shape and dilation is checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BgbiasError
from ..registry import Registry


class U2NetWeightsError(BgbiasError):
    """An ONNX file whose graph is not the U2Net variant asked for."""


class ConvReLU(nn.Module):
    """3x3 conv (batch norm folded in) + ReLU: the paper's REBNCONV at inference."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x), inplace=True)


def upsample_like(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=target.shape[2:], mode="bilinear", align_corners=False)


def downsample(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)


class RSU(nn.Module):
    """Residual U-block of ``height`` levels: (B, in, H, W) -> (B, out, H, W).

    RSU-L (``dilated=False``): L-1 conv levels with 2x max-pooling between them, a dilation-2 conv
    at the bottom, a decoder that upsamples and concatenates the skip of each level.
    RSU-4F (``dilated=True``): same wiring without resampling; dilations 1, 2, 4, bottom 8.
    The block's output is the decoder's output plus its input conv's (a residual).
    """

    def __init__(self, height: int, in_channels: int, mid: int, out_channels: int, dilated: bool):
        super().__init__()
        self.resample = not dilated
        levels = height - 1
        dilations = [2**i if dilated else 1 for i in range(levels)]
        # registration order == execution order (the ONNX weights are matched by it)
        self.conv_in = ConvReLU(in_channels, out_channels)
        self.encoder = nn.ModuleList(
            ConvReLU(out_channels if i == 0 else mid, mid, d) for i, d in enumerate(dilations)
        )
        self.bottom = ConvReLU(mid, mid, 2**levels if dilated else 2)
        self.decoder = nn.ModuleList(
            ConvReLU(2 * mid, out_channels if i == levels - 1 else mid, d)
            for i, d in enumerate(reversed(dilations))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv_in(x)
        skips, h = [], residual
        for i, conv in enumerate(self.encoder):
            h = conv(downsample(h) if self.resample and i > 0 else h)
            skips.append(h)
        h = self.bottom(h)
        for i, conv in enumerate(self.decoder):
            skip = skips.pop()
            if self.resample and i > 0:
                h = upsample_like(h, skip)
            h = conv(torch.cat((h, skip), 1))
        return h + residual


@dataclass(frozen=True)
class U2NetConfig:
    """Per stage (height, in, mid, out, dilated): six encoder stages, five decoder stages."""

    encoder: tuple[tuple[int, int, int, int, bool], ...]
    decoder: tuple[tuple[int, int, int, int, bool], ...]


ARCHITECTURES: Registry[U2NetConfig] = Registry("U2Net architecture")
ARCHITECTURES.register(
    "u2net",
    U2NetConfig(
        encoder=(
            (7, 3, 32, 64, False),
            (6, 64, 32, 128, False),
            (5, 128, 64, 256, False),
            (4, 256, 128, 512, False),
            (4, 512, 256, 512, True),
            (4, 512, 256, 512, True),
        ),
        decoder=(
            (4, 1024, 256, 512, True),
            (4, 1024, 128, 256, False),
            (5, 512, 64, 128, False),
            (6, 256, 32, 64, False),
            (7, 128, 16, 64, False),
        ),
    ),
)
ARCHITECTURES.register(
    "u2netp",
    U2NetConfig(
        encoder=(
            (7, 3, 16, 64, False),
            (6, 64, 16, 64, False),
            (5, 64, 16, 64, False),
            (4, 64, 16, 64, False),
            (4, 64, 16, 64, True),
            (4, 64, 16, 64, True),
        ),
        decoder=(
            (4, 128, 16, 64, True),
            (4, 128, 16, 64, False),
            (5, 128, 16, 64, False),
            (6, 128, 16, 64, False),
            (7, 128, 16, 64, False),
        ),
    ),
)


class U2Net(nn.Module):
    """(B, 3, H, W) normalised RGB -> (B, 1, H, W) saliency in [0, 1] (the fused output, d0)."""

    def __init__(self, config: U2NetConfig):
        super().__init__()
        self.encoder = nn.ModuleList(RSU(*stage) for stage in config.encoder)
        self.decoder = nn.ModuleList(RSU(*stage) for stage in config.decoder)
        # side outputs of decoder stages 1..5 (finest first), then of the last encoder stage
        side_channels = [stage[3] for stage in reversed(config.decoder)]
        side_channels.append(config.encoder[-1][3])
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 3, padding=1) for c in side_channels)
        self.fuse = nn.Conv2d(len(side_channels), 1, 1)

    @classmethod
    def named(cls, name: str) -> U2Net:
        return cls(ARCHITECTURES.get(name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h = [], x
        for i, stage in enumerate(self.encoder):
            h = stage(downsample(h) if i > 0 else h)
            skips.append(h)
        levels = [skips.pop()]  # deepest first
        for stage in self.decoder:
            skip = skips.pop()
            levels.append(stage(torch.cat((upsample_like(levels[-1], skip), skip), 1)))
        levels.reverse()  # finest (decoder stage 1) first, the last encoder stage last
        finest = self.sides[0](levels[0])
        sides = [finest] + [
            upsample_like(side(level), finest)
            for side, level in zip(self.sides[1:], levels[1:], strict=True)
        ]
        # the sigmoid in fp32 even under autocast: masks are min-max normalised afterwards, and
        # fp16 would round the near-0 background and near-1 object values
        return torch.sigmoid(self.fuse(torch.cat(sides, 1)).float())


def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    """The model's convs in execution order (== registration order, see the module docstring)."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


# align_corners=False; the two differ only for outputs of size 1 (which U2Net never upsamples to)
HALF_PIXEL = (b"pytorch_half_pixel", b"half_pixel")


def onnx_conv_weights(path: str | os.PathLike) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
    """(weight, bias, dilations) of every Conv node of an ONNX file, in graph order; numpy arrays.

    Also checks the resampling the architecture assumes (bilinear, half-pixel; ceil max-pool)."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise U2NetWeightsError("the torch mask backend needs `pip install onnx`") from None
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError and others for non-ONNX bytes
        raise U2NetWeightsError(f"{path}: not a readable ONNX file ({exc})") from None
    tensors = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    convs = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Resize" and (
            attrs.get("mode") != b"linear"
            or attrs.get("coordinate_transformation_mode") not in HALF_PIXEL
        ):
            raise U2NetWeightsError(f"{path}: Resize {node.name} is not bilinear/half-pixel")
        if node.op_type == "MaxPool" and attrs.get("ceil_mode") != 1:
            raise U2NetWeightsError(f"{path}: MaxPool {node.name} does not round up")
        if node.op_type != "Conv":
            continue
        names = [name for name in node.input[1:3] if name]
        if any(name not in tensors for name in names):
            raise U2NetWeightsError(f"{path}: Conv {node.name} has no constant weight")
        weight = numpy_helper.to_array(tensors[names[0]])
        bias = (  # optional in ONNX: none means zeros
            numpy_helper.to_array(tensors[names[1]])
            if len(names) > 1
            else np.zeros(weight.shape[0], weight.dtype)
        )
        convs.append((weight, bias, list(attrs.get("dilations", [1, 1]))))
    return convs


def load_onnx_weights(model: U2Net, path: str | os.PathLike, name: str = "U2Net") -> U2Net:
    """Copy the conv weights of the ONNX file at ``path`` into ``model`` (in place)."""
    convs, layers = onnx_conv_weights(path), conv_layers(model)
    if len(convs) != len(layers):
        raise U2NetWeightsError(
            f"{path}: {len(convs)} convolutions, but {name} has {len(layers)}; "
            f"is this the {name} model file?"
        )
    with torch.no_grad():
        for index, ((weight, bias, dilations), layer) in enumerate(zip(convs, layers, strict=True)):
            if (
                tuple(weight.shape) != tuple(layer.weight.shape)
                or tuple(bias.shape) != tuple(layer.bias.shape)
                or tuple(dilations) != tuple(layer.dilation)
            ):
                raise U2NetWeightsError(
                    f"{path}: convolution {index} is {tuple(weight.shape)} dilation "
                    f"{tuple(dilations)}, {name} expects {tuple(layer.weight.shape)} dilation "
                    f"{tuple(layer.dilation)}; is this the {name} model file?"
                )
            layer.weight.copy_(torch.from_numpy(weight.copy()))
            layer.bias.copy_(torch.from_numpy(bias.copy()))
    return model


def load_u2net(name: str, onnx_file: str | os.PathLike) -> U2Net:
    """Architecture ``name`` ("u2net"/"u2netp") with the weights of ``onnx_file``, in eval mode.

    Converting takes 1.4 s for U2Net (0.2 s for U2NetP) on a 2-core CPU, reading a cached state
    dict 0.3 s: not worth a second 176 MB file per model, so nothing is cached."""
    return load_onnx_weights(U2Net.named(name), onnx_file, name).eval()
