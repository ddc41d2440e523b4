"""Image backbones for ACT in plain torch: no torchvision needed.

- ``ResNet18Trunk``: torchvision's ResNet-18 up to layer4 (no pooling, no classifier), with the
  same parameter and buffer names as ``torchvision.models.resnet18().state_dict()`` (less ``fc.*``
  and ``num_batches_tracked``), so a torchvision state dict loads into it (``load_backbone_weights``).
  Its BatchNorm is frozen, as in ACT and DETR: fixed affine weights and running statistics, also in
  train mode. (B, 3, H, W) -> (B, 512, H/32, W/32), 11.2M weights.
- ``SmallCNN``: four 3x3 stride-2 convolutions (32-64-128-256 channels, GroupNorm, ReLU), sized for
  training from scratch on a CPU: (B, 3, H, W) -> (B, 256, H/16, W/16), 0.39M weights.

Frozen BatchNorm holds what ImageNet training measured. A ResNet-18 that starts from random weights
(no ``load_backbone_weights``) has the identity there (mean 0, variance 1, weight 1, bias 0), i.e. no
normalization at all; ``SmallCNN`` normalizes with GroupNorm and needs no pretrained statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from act.config import BACKBONES  # noqa: F401 - the values of ACTConfig.backbone, re-exported

RESNET18_CHANNELS = 512
SMALL_CNN_CHANNELS = (32, 64, 128, 256)


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine weights, all buffers (no gradient, never updated):
    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, in train mode too.

    The buffers carry BatchNorm2d's names, so a BatchNorm2d's state dict loads; its
    ``num_batches_tracked`` is ignored (DETR's FrozenBatchNorm2d does the same)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()  # (C,)
        shift = self.bias - self.running_mean * scale  # (C,)
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)  # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (expansion 1) with frozen BatchNorm."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = FrozenBatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), FrozenBatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


# The old image encoder was nn.Sequential(*list(torchvision resnet18.children())[:-2]): its state
# dict keys start with these indices instead of the names.
_SEQUENTIAL_NAMES = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


class ResNet18Trunk(nn.Module):
    """ResNet-18 without its pooling and classifier: (B, 3, H, W) -> (B, 512, H/32, W/32).

    Module names, parameter shapes and initialization are torchvision's (convolutions
    kaiming-normal, fan_out); BatchNorm is FrozenBatchNorm2d."""

    out_channels = RESNET18_CHANNELS

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, stride=2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, stride=2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, stride=2), BasicBlock(512, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # Image checkpoints written when the trunk was a torchvision nn.Sequential ("0.weight",
        # "4.0.conv1.weight", ...) load under today's names; their BatchNorm statistics are what their
        # eval mode used, so such a policy runs as it did.
        for key in [k for k in state_dict if k.startswith(prefix)]:
            head, _, rest = key[len(prefix):].partition(".")
            if head in _SEQUENTIAL_NAMES and rest:
                state_dict[prefix + _SEQUENTIAL_NAMES[head] + "." + rest] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, H/32, W/32)


class SmallCNN(nn.Module):
    """Four 3x3 stride-2 convolutions with GroupNorm (8 groups) and ReLU:
    (B, 3, H, W) -> (B, 256, ceil(H/16), ceil(W/16)); 96x96 gives a 6x6 map."""

    out_channels = SMALL_CNN_CHANNELS[-1]

    def __init__(self, channels: tuple[int, ...] = SMALL_CNN_CHANNELS):
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.ReLU(inplace=True)]
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, C, H/16, W/16)


def build_backbone(name: str) -> nn.Module:
    """The backbone ACTConfig.backbone names, with random weights."""
    if name == "resnet18":
        return ResNet18Trunk()
    if name == "small":
        return SmallCNN()
    raise ValueError(f"backbone={name!r}: must be one of {', '.join(BACKBONES)}")


# --------------------------------------------------------------------------------------------
# Pretrained weights from a file
# --------------------------------------------------------------------------------------------

RESNET18_HOWTO = ("save a torchvision resnet18 state dict with torch.save(torchvision.models.resnet18("
                  "weights='IMAGENET1K_V1').state_dict(), PATH) on a machine where torchvision works")


def load_backbone_weights(module: nn.Module, path) -> nn.Module:
    """Load a torchvision-style state dict saved with ``torch.save`` into ``module`` (a ResNet18Trunk,
    or any backbone with the file's names) and return it.

    The file holds a dict of tensors, or a dict with a "state_dict" or "model" entry that is one;
    a "module." prefix (DDP) is dropped, as are ``fc.*`` (the classifier) and ``num_batches_tracked``.
    Every other key must be one of the module's, with its shape, and every one of the module's
    keys must be there: otherwise a one-line ToolkitError names the first offending key. The file is
    read with ``weights_only=True``: it cannot run code.
    """
    from teleop.errors import ToolkitError

    path = Path(path)
    howto = _howto(module)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ToolkitError(f"backbone weights {path}: no such file; {howto}") from None
    except Exception as err:  # noqa: BLE001 - an unpickling error or a damaged file, told in one line
        first = " ".join(str(err).split())[:200]
        raise ToolkitError(f"backbone weights {path}: not a torch.save file of tensors "
                           f"({type(err).__name__}: {first}); {howto}") from None
    return load_backbone_state(module, data, f"backbone weights {path}")


def load_backbone_state(module: nn.Module, data, source: str) -> nn.Module:
    """``load_backbone_weights`` for a state dict already in memory; ``source`` names it in errors."""
    from teleop.errors import ToolkitError

    howto = _howto(module)
    if isinstance(data, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(data.get(wrapper), dict):
                data = data[wrapper]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ToolkitError(f"{source}: expected a dict of tensors (a state dict), got "
                           f"{type(data).__name__}; {howto}")
    weights = {}
    for key, value in data.items():
        key = key.removeprefix("module.")
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        weights[key] = value
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in weights:
            raise ToolkitError(f"{source}: key {key} is missing (expected shape "
                               f"{tuple(tensor.shape)}, found none); {howto}")
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise ToolkitError(f"{source}: key {key} has shape {tuple(weights[key].shape)}, "
                               f"expected {tuple(tensor.shape)}; {howto}")
    extra = [k for k in weights if k not in expected]
    if extra:
        raise ToolkitError(f"{source}: key {extra[0]} is not in this backbone "
                           f"({len(extra)} such keys: another architecture, e.g. a deeper ResNet?); {howto}")
    module.load_state_dict(weights, strict=True)
    return module


def _howto(module: nn.Module) -> str:
    return RESNET18_HOWTO if isinstance(module, ResNet18Trunk) else "pass a state dict saved from this backbone"


def load_pretrained(module: nn.Module, source: str) -> nn.Module:
    """act-train --backbone-weights: ``source`` is a file for load_backbone_weights, or ``torchvision``
    for torchvision's ImageNet ResNet-18 weights (where torchvision imports)."""
    from teleop.errors import ToolkitError

    if source != "torchvision":
        return load_backbone_weights(module, source)
    if not isinstance(module, ResNet18Trunk):
        raise ToolkitError("--backbone-weights torchvision: those are ResNet-18 weights; add --backbone resnet18")
    weights = torchvision_weights()
    if weights is None:
        raise ToolkitError("--backbone-weights torchvision: torchvision does not import here (it needs a build "
                           f"made for this torch); {RESNET18_HOWTO} and pass that file")
    return load_backbone_state(module, weights, "torchvision's resnet18 weights")


def torchvision_weights() -> dict[str, torch.Tensor] | None:
    """torchvision's ImageNet ResNet-18 state dict (IMAGENET1K_V1) when torchvision imports, else None.

    Never needed: it is one way to make the file ``load_backbone_weights`` reads. torchvision downloads
    the weights (45 MB) into torch's hub cache unless they are there already."""
    try:
        from torchvision.models import ResNet18_Weights
    except Exception:  # noqa: BLE001 - a torchvision built for another torch raises RuntimeError
        return None
    return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
