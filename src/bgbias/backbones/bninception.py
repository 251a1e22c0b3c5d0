"""BN-Inception (Ioffe & Szegedy 2015), the paper's backbone: 1024-d pooled features.

Module names follow the Caffe port distributed as ``bn_inception-52deb4733.pth``
(pretrained-models.pytorch), so that file loads as is.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..cache import cache_dir
from ..data.transforms import RECIPES, Normalization, Recipe
from ..downloads import AssetError, download, hash_prefix, verify_file
from ..errors import ConfigError
from .registry import BACKBONES, BackboneSpec

log = logging.getLogger(__name__)

WEIGHTS_FILE = "bn_inception-52deb4733.pth"
WEIGHTS_URL = f"http://data.lip6.fr/cadene/pretrainedmodels/{WEIGHTS_FILE}"
# The file's name carries its sha256 prefix (torch.hub's convention); the full digest is the
# one public projects pin for this file. It agrees with the prefix, but could not be recomputed
# here (no internet while it was written).
WEIGHTS_SHA256 = "52deb473314542a5c2f87e9e6f26f4ca42fe863d15f986414dbae8c2dfdd2353"

# name, input channels, 1x1, (3x3 reduce, 3x3), (double reduce, double), pool kind, pool projection
# A stride-2 module has no 1x1 branch and passes its pooled input through unprojected.
INCEPTION = [
    ("3a", 192, 64, (64, 64), (64, 96), "avg", 32),
    ("3b", 256, 64, (64, 96), (64, 96), "avg", 64),
    ("3c", 320, None, (128, 160), (64, 96), "max_s2", None),
    ("4a", 576, 224, (64, 96), (96, 128), "avg", 128),
    ("4b", 576, 192, (96, 128), (96, 128), "avg", 128),
    ("4c", 576, 160, (128, 160), (128, 160), "avg", 128),
    ("4d", 608, 96, (128, 192), (160, 192), "avg", 128),
    ("4e", 608, None, (128, 192), (192, 256), "max_s2", None),
    ("5a", 1056, 352, (192, 320), (160, 224), "avg", 128),
    ("5b", 1024, 352, (192, 320), (192, 224), "max", 128),
]


class BNInception(nn.Module):
    """(B, 3, H, W) Caffe-normalised BGR images -> (B, 1024) average-pooled features."""

    features_dim = 1024

    def __init__(self):
        super().__init__()
        self._conv("conv1_7x7_s2", 3, 64, 7, stride=2, padding=3)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._conv("conv2_3x3_reduce", 64, 64, 1)
        self._conv("conv2_3x3", 64, 192, 3, padding=1)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.blocks = [self._inception(*spec) for spec in INCEPTION]
        self.global_pool = nn.AdaptiveAvgPool2d(1)

    def _conv(
        self, name: str, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0
    ) -> str:
        self.add_module(name, nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding))
        self.add_module(f"{name}_bn", nn.BatchNorm2d(cout, eps=1e-5))
        return name

    def _unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))

    def _inception(self, block, cin, c1x1, reduce3, double3, pool, proj):
        p = f"inception_{block}"
        stride = 2 if pool == "max_s2" else 1
        branches: list[list[str]] = []
        if c1x1 is not None:
            branches.append([self._conv(f"{p}_1x1", cin, c1x1, 1)])
        branches.append(
            [
                self._conv(f"{p}_3x3_reduce", cin, reduce3[0], 1),
                self._conv(f"{p}_3x3", reduce3[0], reduce3[1], 3, stride, 1),
            ]
        )
        branches.append(
            [
                self._conv(f"{p}_double_3x3_reduce", cin, double3[0], 1),
                self._conv(f"{p}_double_3x3_1", double3[0], double3[1], 3, 1, 1),
                self._conv(f"{p}_double_3x3_2", double3[1], double3[1], 3, stride, 1),
            ]
        )
        if pool == "avg":
            pool_layer = nn.AvgPool2d(
                3, stride=1, padding=1, ceil_mode=True, count_include_pad=True
            )
        elif pool == "max":
            pool_layer = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        else:
            pool_layer = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.add_module(f"{p}_pool", pool_layer)
        pool_branch = [f"{p}_pool"] + ([self._conv(f"{p}_pool_proj", cin, proj, 1)] if proj else [])
        branches.append(pool_branch)
        return branches

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1024, H/32, W/32) feature map."""
        x = self.pool1_3x3_s2(self._unit("conv1_7x7_s2", x))
        x = self._unit("conv2_3x3", self._unit("conv2_3x3_reduce", x))
        x = self.pool2_3x3_s2(x)
        for branches in self.blocks:
            outputs = []
            for branch in branches:
                y = x
                for name in branch:
                    y = getattr(self, name)(y) if name.endswith("_pool") else self._unit(name, y)
                outputs.append(y)
            x = torch.cat(outputs, dim=1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_pool(self.forward_features(x)).flatten(1)


def load_bninception_weights(model: BNInception, path: str | Path) -> None:
    """Load the ImageNet weight file (the classifier ``last_linear`` is dropped)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ConfigError(f"{path}: not a readable BN-Inception weight file ({exc})") from None
    state = {k: v for k, v in state.items() if not k.startswith("last_linear")}
    own = model.state_dict()
    # some ports store BatchNorm vectors as (1, C): keep the values, fix the shape
    state = {
        k: v.reshape(own[k].shape) if k in own and v.numel() == own[k].numel() else v
        for k, v in state.items()
    }
    wrong = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        raise ConfigError(
            f"{path}: does not match BN-Inception (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]})"
        )
    model.load_state_dict(state, strict=False)


def _build(pretrained: bool, weights: str | None) -> nn.Module:
    model = BNInception()
    if weights:
        load_bninception_weights(model, checked_weights(Path(weights)))
    elif pretrained:
        load_bninception_weights(model, _cached_weights())
    return model


def checked_weights(path: Path) -> Path:
    """A local weight file (``model.weights=``), checked against the pinned sha256 when it
    is the published file, else against the hash prefix in its name where it has one."""
    if not path.is_file():
        raise ConfigError(f"{path}: BN-Inception weight file not found")
    if path.name == WEIGHTS_FILE:
        verify_file(path, sha256=WEIGHTS_SHA256)
    elif hash_prefix(path.name):
        verify_file(path, prefix=hash_prefix(path.name))
    else:
        log.warning(
            "%s: loaded unverified (no sha256 prefix in its name, as in %s)", path, WEIGHTS_FILE
        )
    return path


def _cached_weights() -> Path:
    """The published ImageNet weights in the cache, downloaded once; verified every time."""
    path = cache_dir("weights") / WEIGHTS_FILE
    try:
        return download(WEIGHTS_URL, path, WEIGHTS_SHA256, progress=True)
    except AssetError as exc:  # offline, proxy, HTTP errors, a damaged file: one clear message
        raise ConfigError(
            f"BN-Inception ImageNet weights are missing or damaged in {path} and could not be "
            f"downloaded ({exc}). On a machine with internet, download {WEIGHTS_URL} and copy "
            f"it to {path} (or pass model.weights=PATH); or train from scratch with "
            "model.pretrained=false."
        ) from None


# the paper's preprocessing: Caffe-style BGR, mean (104, 117, 128), std 1, 227 px crops of 256
RECIPE = RECIPES.register(
    "bninception",
    Recipe(
        "bninception",
        resize=256,
        crop=227,
        normalization=Normalization("BGR", (104.0, 117.0, 128.0), (1.0, 1.0, 1.0)),
    ),
)

BACKBONES.register(
    "bninception",
    BackboneSpec(
        _build,
        BNInception.features_dim,
        "bninception",
        has_pretrained=True,
        description="BN-Inception, the paper's backbone (ImageNet weights: download once)",
    ),
)
