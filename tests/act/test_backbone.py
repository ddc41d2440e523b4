"""act/backbone.py: ResNet-18 with torchvision's names, frozen BatchNorm, weights from a file, a small CNN.

No torchvision here: the expected state dict is written out below from the architecture
(torchvision.models.resnet18: BasicBlock, layers [2, 2, 2, 2], widths 64-128-256-512).
"""

import sys

import pytest
import torch

from act.backbone import (FrozenBatchNorm2d, ResNet18Trunk, SmallCNN, build_backbone, load_backbone_weights,
                          torchvision_weights)
from act.config import ACTConfig
from act.model import ACTPolicy
from teleop.errors import ToolkitError

torch.set_num_threads(1)

# torchvision's resnet18 without fc, module by module in its state dict's order: a convolution (no
# bias) with its weight shape, or a BatchNorm with its channels, which has weight, bias, running_mean,
# running_var (C,) and, in torchvision's state dict, num_batches_tracked (a 0-d int64).
RESNET18_MODULES = [
    ("conv1", (64, 3, 7, 7)), ("bn1", 64),
    ("layer1.0.conv1", (64, 64, 3, 3)), ("layer1.0.bn1", 64), ("layer1.0.conv2", (64, 64, 3, 3)), ("layer1.0.bn2", 64),
    ("layer1.1.conv1", (64, 64, 3, 3)), ("layer1.1.bn1", 64), ("layer1.1.conv2", (64, 64, 3, 3)), ("layer1.1.bn2", 64),
    ("layer2.0.conv1", (128, 64, 3, 3)), ("layer2.0.bn1", 128),
    ("layer2.0.conv2", (128, 128, 3, 3)), ("layer2.0.bn2", 128),
    ("layer2.0.downsample.0", (128, 64, 1, 1)), ("layer2.0.downsample.1", 128),
    ("layer2.1.conv1", (128, 128, 3, 3)), ("layer2.1.bn1", 128),
    ("layer2.1.conv2", (128, 128, 3, 3)), ("layer2.1.bn2", 128),
    ("layer3.0.conv1", (256, 128, 3, 3)), ("layer3.0.bn1", 256),
    ("layer3.0.conv2", (256, 256, 3, 3)), ("layer3.0.bn2", 256),
    ("layer3.0.downsample.0", (256, 128, 1, 1)), ("layer3.0.downsample.1", 256),
    ("layer3.1.conv1", (256, 256, 3, 3)), ("layer3.1.bn1", 256),
    ("layer3.1.conv2", (256, 256, 3, 3)), ("layer3.1.bn2", 256),
    ("layer4.0.conv1", (512, 256, 3, 3)), ("layer4.0.bn1", 512),
    ("layer4.0.conv2", (512, 512, 3, 3)), ("layer4.0.bn2", 512),
    ("layer4.0.downsample.0", (512, 256, 1, 1)), ("layer4.0.downsample.1", 512),
    ("layer4.1.conv1", (512, 512, 3, 3)), ("layer4.1.bn1", 512),
    ("layer4.1.conv2", (512, 512, 3, 3)), ("layer4.1.bn2", 512),
]
BN_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_resnet18_shapes(with_fc=True) -> dict[str, tuple[int, ...]]:
    """torchvision.models.resnet18().state_dict(): names and shapes in order, from the table above."""
    shapes = {}
    for name, shape in RESNET18_MODULES:
        if isinstance(shape, tuple):  # a convolution
            shapes[f"{name}.weight"] = shape
        else:  # a BatchNorm of `shape` channels
            shapes.update({f"{name}.{entry}": (shape,) for entry in BN_ENTRIES[:4]})
            shapes[f"{name}.num_batches_tracked"] = ()
    if with_fc:
        shapes.update({"fc.weight": (1000, 512), "fc.bias": (1000,)})
    return shapes


def random_torchvision_state_dict(seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet18_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(12345)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


def test_resnet18_state_dict_has_torchvision_names_and_shapes():
    expected = torchvision_resnet18_shapes(with_fc=False)
    assert sum(isinstance(s, int) for _, s in RESNET18_MODULES) == 20  # 20 convolutions, 20 BatchNorms
    assert len(expected) == 120  # torchvision's resnet18 state dict (122 entries) less fc.weight and fc.bias
    ours = {k: tuple(v.shape) for k, v in ResNet18Trunk().state_dict().items()}
    assert len(ours) == 100  # the same less the 20 num_batches_tracked
    assert list(ours.items()) == [(k, s) for k, s in expected.items() if not k.endswith("num_batches_tracked")]
    representative = {
        "conv1.weight": (64, 3, 7, 7), "bn1.weight": (64,), "bn1.running_mean": (64,),
        "layer1.0.conv1.weight": (64, 64, 3, 3), "layer1.1.bn2.running_var": (64,),
        "layer2.0.conv1.weight": (128, 64, 3, 3), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer2.0.downsample.1.weight": (128,), "layer3.0.downsample.1.running_mean": (256,),
        "layer3.1.conv2.weight": (256, 256, 3, 3), "layer4.0.downsample.0.weight": (512, 256, 1, 1),
        "layer4.1.conv2.weight": (512, 512, 3, 3), "layer4.1.bn2.bias": (512,),
    }
    assert {k: ours[k] for k in representative} == representative
    assert not any(k.startswith("fc.") for k in ours) and "layer1.0.downsample.0.weight" not in ours
    # The trainable weights are the 20 convolutions: torchvision's 11,689,512 less fc (513,000) and
    # BatchNorm's affine weights (9,600).
    trunk = ResNet18Trunk()
    assert sum(p.numel() for p in trunk.parameters()) == 11_689_512 - 513_000 - 9_600
    assert trunk(torch.zeros(1, 3, 64, 96)).shape == (1, 512, 2, 3)


def test_torchvision_state_dict_loads_and_changes_the_output(tmp_path):
    torch.manual_seed(0)
    trunk = ResNet18Trunk().eval()
    x = torch.rand(2, 3, 64, 64)
    before = trunk(x)
    state = random_torchvision_state_dict()
    torch.save(state, tmp_path / "r18.pt")
    assert load_backbone_weights(trunk, tmp_path / "r18.pt") is trunk
    loaded = trunk.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)
    after = trunk(x)
    assert after.shape == before.shape and not torch.allclose(before, after)
    # Wrapped as a training checkpoint ("state_dict" / "model") and saved from DDP ("module."): the same.
    other = ResNet18Trunk().eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 90}, tmp_path / "w.pt")
    load_backbone_weights(other, tmp_path / "w.pt")
    assert torch.equal(other(x), after)


@pytest.mark.parametrize("change, words", [
    (lambda s: s.update({"layer2.0.conv1.weight": torch.zeros(128, 64, 5, 5)}),
     ["layer2.0.conv1.weight", "(128, 64, 5, 5)", "expected (128, 64, 3, 3)"]),
    (lambda s: s.pop("layer3.1.bn1.running_var"),
     ["layer3.1.bn1.running_var", "missing", "(256,)"]),
    (lambda s: s.update({"layer1.2.conv1.weight": torch.zeros(64, 64, 3, 3)}),  # a resnet34's extra block
     ["layer1.2.conv1.weight", "not in this backbone"]),
])
def test_a_wrong_state_dict_is_a_one_line_error_naming_the_key(tmp_path, change, words):
    state = random_torchvision_state_dict()
    change(state)
    torch.save(state, tmp_path / "bad.pt")
    trunk = ResNet18Trunk()
    original = {k: v.clone() for k, v in trunk.state_dict().items()}
    with pytest.raises(ToolkitError) as info:
        load_backbone_weights(trunk, tmp_path / "bad.pt")
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert "torch.save(torchvision.models.resnet18(" in message  # the fix
    assert all(torch.equal(original[k], v) for k, v in trunk.state_dict().items())  # nothing half-loaded


def test_unreadable_weight_files_are_one_line_errors(tmp_path):
    with pytest.raises(ToolkitError, match="no such file"):
        load_backbone_weights(ResNet18Trunk(), tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ToolkitError, match="not a torch.save file") as info:
        load_backbone_weights(ResNet18Trunk(), tmp_path / "junk.pt")
    assert "\n" not in str(info.value)


def test_torchvision_weights_is_none_without_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    assert torchvision_weights() is None


def test_frozen_batch_norm_gets_no_gradient_and_keeps_its_statistics():
    torch.manual_seed(0)
    trunk = ResNet18Trunk()
    trunk.load_state_dict({k: v for k, v in random_torchvision_state_dict().items() if not k.startswith("fc.")})
    trunk.train()
    bns = [m for m in trunk.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(bns) == 20 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in trunk.modules())
    assert all(len(list(bn.parameters())) == 0 for bn in bns)  # buffers only: no optimizer sees them
    stats = {k: v.clone() for k, v in trunk.state_dict().items()}
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    trunk(x).square().mean().backward()
    assert all(not b.requires_grad and b.grad is None for bn in bns for b in bn.buffers())
    assert trunk.conv1.weight.grad is not None and x.grad is not None
    assert all(torch.equal(stats[k], v) for k, v in trunk.state_dict().items())  # unchanged in train mode
    # The same function as an eval-mode BatchNorm2d with those statistics, in train mode too.
    bn = bns[3]
    reference = torch.nn.BatchNorm2d(bn.num_features).eval()
    reference.load_state_dict(bn.state_dict(), strict=False)
    y = torch.randn(3, bn.num_features, 4, 4)
    assert torch.allclose(bn(y), reference(y), atol=1e-5)


def test_checkpoints_of_the_torchvision_sequential_trunk_still_load():
    """Image checkpoints written with torchvision's nn.Sequential trunk ("images.backbone.0.weight",
    "images.backbone.4.0.bn1.num_batches_tracked", ...) load strictly and run as they did in eval mode."""
    torch.manual_seed(0)
    config = ACTConfig(state_dim=5, action_dim=3, chunk_size=4, hidden_dim=16, feedforward_dim=32, n_heads=2,
                       n_encoder_layers=1, latent_dim=4, camera_names=("corner",), image_size=(32, 32))
    policy = ACTPolicy(config)
    policy.images.backbone.load_state_dict(
        {k: v for k, v in random_torchvision_state_dict().items() if not k.startswith("fc.")})
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    old = {}
    for key, value in policy.state_dict().items():
        if key.startswith("images.backbone."):
            head, rest = key[len("images.backbone."):].split(".", 1)
            key = f"images.backbone.{index[head]}.{rest}"
            if key.endswith("running_var"):
                old[key.replace("running_var", "num_batches_tracked")] = torch.tensor(7)
        old[key] = value
    fresh = ACTPolicy(config)
    fresh.load_state_dict(old, strict=True)
    state, images = torch.randn(2, 5), torch.rand(2, 1, 3, 32, 32)
    assert torch.equal(fresh.predict_chunk(state, images), policy.predict_chunk(state, images))


def test_small_cnn_shapes_and_policy():
    cnn = SmallCNN()
    assert cnn(torch.zeros(2, 3, 96, 96)).shape == (2, 256, 6, 6)
    assert sum(p.numel() for p in cnn.parameters()) == 389_376
    torch.manual_seed(0)
    config = ACTConfig(state_dim=5, action_dim=3, chunk_size=4, hidden_dim=16, feedforward_dim=32, n_heads=2,
                       n_encoder_layers=1, latent_dim=4, camera_names=("a", "b"), image_size=(96, 64),
                       backbone="small")
    policy = ACTPolicy(config)
    assert isinstance(policy.images.backbone, SmallCNN) and policy.images.proj.in_channels == 256
    images = torch.rand(2, 2, 3, 96, 64)
    tokens, pos = policy.images(images)
    assert tokens.shape == (2, 2 * 6 * 4, 16) and pos.shape == (1, 48, 16)
    batch = dict(state=torch.randn(2, 5), action=torch.randn(2, 4, 3), action_pad=torch.zeros(2, 4, dtype=bool),
                 images=images)
    loss, _ = policy(batch)
    loss.backward()
    assert policy.images.backbone.layers[0].weight.grad.abs().sum() > 0
    groups = policy.make_optimizer().param_groups
    assert sum(p.numel() for p in groups[1]["params"]) == 389_376  # the backbone trains at lr_backbone


def test_backbone_field_is_validated_and_old_configs_are_resnet18():
    with pytest.raises(ValueError, match="backbone='resnet50': must be one of resnet18, small"):
        ACTConfig(backbone="resnet50").validate()
    with pytest.raises(ValueError, match="resnet50"):
        build_backbone("resnet50")
    old = ACTConfig().to_dict()
    del old["backbone"]  # a checkpoint written before the field
    assert ACTConfig.from_dict(old).backbone == "resnet18"
    assert ACTConfig.from_dict(ACTConfig(backbone="small").to_dict()).backbone == "small"
