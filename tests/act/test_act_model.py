import json
import sys

import pytest
import torch
import torch.nn as nn

import act.model
from act.backbone import ResNet18Trunk
from act.config import ACTConfig
from act.model import ACTPolicy, VisionDependencyError, sinusoidal_embedding_2d

torch.set_num_threads(1)

B, S, A, K = 4, 5, 3, 6


def tiny_config(**changes) -> ACTConfig:
    fields = dict(state_dim=S, action_dim=A, chunk_size=K, hidden_dim=32, feedforward_dim=64,
                  n_heads=4, n_encoder_layers=2, n_decoder_layers=1, n_vae_encoder_layers=1,
                  latent_dim=8)
    fields.update(changes)
    return ACTConfig(**fields)


def make_batch(seed: int = 0, batch_size: int = B) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pad = torch.zeros(batch_size, K, dtype=torch.bool)
    pad[0, 4:] = True  # episode ended two steps before the chunk does
    pad[1, 1:] = True  # only the first step is real
    return dict(state=torch.randn(batch_size, S, generator=g),
                action=torch.randn(batch_size, K, A, generator=g),
                action_pad=pad)


def make_policy(seed: int = 0, **changes) -> ACTPolicy:
    torch.manual_seed(seed)
    return ACTPolicy(tiny_config(**changes))


def test_shapes_and_loss_dict():
    policy = make_policy()
    loss, info = policy(make_batch())
    assert loss.shape == () and loss.requires_grad
    assert set(info) == {"l1", "kl", "loss"} and all(isinstance(v, float) for v in info.values())
    assert info["loss"] == pytest.approx(info["l1"] + policy.config.kl_weight * info["kl"], rel=1e-5)
    assert info["kl"] > 0
    chunk = policy.predict_chunk(torch.randn(7, S))
    assert chunk.shape == (7, K, A) and not chunk.requires_grad


def test_changing_padded_actions_does_not_change_the_loss():
    policy = make_policy()
    batch = make_batch()
    changed = dict(batch, action=batch["action"].clone())
    changed["action"][batch["action_pad"]] = 1e3  # garbage past the episode end
    for train in (False, True):
        policy.train(train)
        torch.manual_seed(1)  # same latent noise and dropout in both calls
        loss_a, _ = policy(batch)
        torch.manual_seed(1)
        loss_b, _ = policy(changed)
        torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=1e-6)
    # ... while changing a valid step does change it
    changed["action"][0, 0] += 1.0
    assert policy(changed)[0].item() != pytest.approx(loss_a.item(), abs=1e-4)


def test_l1_is_the_mean_over_valid_steps_only():
    policy = make_policy().eval()
    batch = make_batch()
    _, info = policy(batch)
    with torch.no_grad():
        mu, logvar = policy.encode_latent(batch["state"], batch["action"], batch["action_pad"])
        pred = policy.decode(batch["state"], mu)  # eval mode uses z = mu
    err = (pred - batch["action"]).abs()  # (B, K, A)
    valid = ~batch["action_pad"]
    assert info["l1"] == pytest.approx(err[valid].mean().item(), rel=1e-5)
    assert info["l1"] != pytest.approx(err.mean().item(), rel=1e-3)  # padding actually excluded
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(1).mean()
    assert info["kl"] == pytest.approx(kl.item(), rel=1e-5)


def test_inference_is_deterministic_and_ignores_the_cvae_encoder():
    policy = make_policy().train()  # predict_chunk must switch dropout off by itself
    state = torch.randn(3, S)
    first = policy.predict_chunk(state)
    second = policy.predict_chunk(state)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert policy.training  # mode restored
    with torch.no_grad():
        policy.eval()
        torch.testing.assert_close(first, policy.decode(state, torch.zeros(3, 8)), rtol=0, atol=0)
        # z = 0: the CVAE encoder (which reads the action chunk) plays no part at inference
        for p in list(policy.vae_encoder.parameters()) + list(policy.vae_action_proj.parameters()):
            p.add_(torch.randn_like(p))
    torch.testing.assert_close(policy.predict_chunk(state), first, rtol=0, atol=0)
    # ... but the latent does matter to the decoder, so z = 0 is a real choice
    with torch.no_grad():
        assert not torch.allclose(policy.decode(state, torch.ones(3, 8)), first)


# The decoder's input is all zeros (DETR, ACT), so the first decoder layer's self-attention
# averages identical zero values: its in-projection weights never get a gradient, and its
# out-projection and first norm only do once their biases move off their zero init.
DEAD_AT_INIT = {"decoder.layers.0.self_attn.in_proj_weight",
                "decoder.layers.0.self_attn.out_proj.weight",
                "decoder.layers.0.norm1.weight"}


def params_without_gradient(policy: ACTPolicy) -> set[str]:
    return {n for n, p in policy.named_parameters() if p.grad is None or p.grad.abs().sum() == 0}


def test_gradients_reach_every_parameter():
    policy = make_policy(n_decoder_layers=2).train()
    loss, _ = policy(make_batch())
    loss.backward()
    assert params_without_gradient(policy) == DEAD_AT_INIT


def test_action_head_reads_the_last_decoder_layer():
    policy = make_policy(n_decoder_layers=2)
    state = torch.randn(2, S)
    before = policy.predict_chunk(state)
    with torch.no_grad():
        last = policy.decoder.layers[-1]
        last.feed_forward.fc2.weight.add_(torch.randn_like(last.feed_forward.fc2.weight))
    after = policy.predict_chunk(state)
    assert (after - before).abs().max() > 1e-3


def test_checkpoint_rebuilds_from_config_dict_alone():
    policy = make_policy(kl_weight=3.0)
    checkpoint = {"config": json.loads(json.dumps(policy.config.to_dict())),
                  "model": policy.state_dict()}
    rebuilt = ACTPolicy(ACTConfig.from_dict(checkpoint["config"]))
    rebuilt.load_state_dict(checkpoint["model"])
    state = torch.randn(2, S)
    torch.testing.assert_close(rebuilt.predict_chunk(state), policy.predict_chunk(state))


def test_input_shape_errors_are_explicit():
    policy = make_policy()
    with pytest.raises(ValueError, match="state_dim"):
        policy.predict_chunk(torch.zeros(2, S + 1))
    with pytest.raises(ValueError, match="camera_names"):
        policy.predict_chunk(torch.zeros(2, S), images=torch.zeros(2, 1, 3, 32, 32))
    batch = make_batch()
    with pytest.raises(ValueError, match="action_pad"):
        policy(dict(batch, action_pad=batch["action_pad"].float()))
    with pytest.raises(ValueError, match="chunk_size"):
        policy(dict(batch, action=batch["action"][:, :-1]))


def test_tiny_overfit_drives_l1_down():
    torch.manual_seed(0)
    policy = ACTPolicy(tiny_config(dropout=0.0, lr=3e-3))
    optimizer = policy.make_optimizer()
    batch = make_batch(seed=1, batch_size=16)
    valid = ~batch["action_pad"]

    def eval_l1() -> float:
        pred = policy.predict_chunk(batch["state"])
        return (pred - batch["action"]).abs()[valid].mean().item()

    start = eval_l1()
    for _ in range(400):
        loss, _ = policy(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    end = eval_l1()
    assert end < start / 3, (start, end)  # about 7x with this seed


def test_2d_position_embedding_gives_every_cell_its_own_code():
    pos = sinusoidal_embedding_2d(3, 5, 16)  # (H*W, D)
    assert pos.shape == (15, 16)
    assert torch.cdist(pos, pos).add(torch.eye(15) * 1e3).min() > 1e-3


# ---- images -------------------------------------------------------------------------------

CAMERAS = ("corner", "gripperPOV")


def image_batch(config: ACTConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = make_batch(seed)
    batch["images"] = torch.rand(B, len(config.camera_names), 3, *config.image_size, generator=g)
    return batch


@pytest.fixture
def fake_resnet(monkeypatch):
    """A one-layer stand-in with ResNet-18's output (512 channels, stride 32), so the image path
    is tested without torchvision."""
    monkeypatch.setattr(act.model, "resnet18_trunk",
                        lambda: nn.Sequential(nn.Conv2d(3, 512, kernel_size=32, stride=32),
                                              nn.BatchNorm2d(512), nn.ReLU()))


def test_image_path_with_stand_in_backbone(fake_resnet):
    torch.manual_seed(0)
    config = tiny_config(camera_names=CAMERAS, image_size=(64, 96))
    policy = ACTPolicy(config)
    batch = image_batch(config)
    tokens, pos = policy.images(batch["images"])
    assert tokens.shape == (B, 2 * 2 * 3, 32) and pos.shape == (1, 12, 32)  # 2 cameras x 2x3 cells
    loss, _ = policy(batch)
    loss.backward()
    assert params_without_gradient(policy) == DEAD_AT_INIT
    chunk = policy.predict_chunk(batch["state"], batch["images"])
    assert chunk.shape == (B, K, A)
    swapped = policy.predict_chunk(batch["state"], batch["images"].flip(1))
    assert not torch.allclose(chunk, swapped)  # the policy knows which camera is which
    groups = policy.make_optimizer().param_groups
    assert [g["lr"] for g in groups] == [config.lr, config.lr_backbone]
    assert sum(p.numel() for p in groups[1]["params"]) == sum(
        p.numel() for p in policy.images.backbone.parameters())
    with pytest.raises(ValueError, match="image_size"):
        policy.predict_chunk(batch["state"], batch["images"][..., :32])
    with pytest.raises(ValueError, match="needs images"):
        policy.predict_chunk(batch["state"])


def test_cameras_need_no_torchvision(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    policy = ACTPolicy(tiny_config(camera_names=("corner",), image_size=(32, 32)))  # nothing raised
    assert isinstance(policy.images.backbone, ResNet18Trunk)  # random weights: nothing is downloaded
    assert issubclass(VisionDependencyError, ImportError)  # kept for code that catches it
    ACTPolicy(tiny_config())


def test_image_path_with_real_resnet18():
    torch.manual_seed(0)
    config = tiny_config(camera_names=CAMERAS, image_size=(64, 64))
    policy = ACTPolicy(config)
    assert isinstance(policy.images.backbone.conv1, nn.Conv2d)
    batch = image_batch(config)
    tokens, _ = policy.images(batch["images"])
    assert tokens.shape == (B, 2 * 2 * 2, 32)
    loss, _ = policy(batch)
    loss.backward()
    assert policy.images.backbone.conv1.weight.grad.abs().sum() > 0
    assert policy.predict_chunk(batch["state"], batch["images"]).shape == (B, K, A)


def test_fresh_policy_tells_chunk_steps_apart():
    """The decoder's input is zeros, so only query_pos separates the chunk's steps. At std 0.02 they
    came out nearly identical (within-chunk spread 0.4% of the total) and pick-place-v3 (45 demos) was
    at 1/20 successes after 1000 steps instead of 15/20; N(0, 1), as the published nn.Embedding, gives
    about 17%."""
    from act.config import ACTConfig

    torch.manual_seed(0)
    policy = ACTPolicy(ACTConfig())
    chunk = policy.predict_chunk(torch.randn(8, 39))  # (B, K, A)
    assert (chunk.std(dim=1).mean() / chunk.std(dim=(0, 1)).mean()).item() > 0.05


# ---- the layers written out for speed compute what torch's modules compute ----

def test_attention_computes_what_torch_multihead_attention_computes():
    """Same parameters (an nn.MultiheadAttention's state dict loads strictly, so checkpoints written
    with it keep loading), same outputs, for self-attention with a padding mask and for cross-attention."""
    config = tiny_config(dropout=0.0)
    torch.manual_seed(3)
    reference = nn.MultiheadAttention(config.hidden_dim, config.n_heads, batch_first=True).eval()
    attention = act.model.Attention(config, act.model.DropoutMasks()).eval()
    attention.load_state_dict(reference.state_dict(), strict=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 7, config.hidden_dim, generator=g)
    memory = torch.randn(B, 3, config.hidden_dim, generator=g)
    ignore = torch.zeros(B, 7, dtype=torch.bool)
    ignore[0, 4:] = True
    ignore[2, 1:] = True
    with torch.no_grad():
        want = reference(x, x, x, key_padding_mask=ignore, need_weights=False)[0]
        got = attention(x, x, x, act.model.padding_bias(ignore, x.dtype))
        assert torch.allclose(got, want, atol=1e-5)
        want = reference(x, memory, memory, need_weights=False)[0]
        assert torch.allclose(attention(x, memory, memory), want, atol=1e-5)


def test_a_seed_builds_the_same_weights_as_with_torch_multihead_attention():
    """Attention creates and initializes its parameters in nn.MultiheadAttention's order: a seed gives
    the weights it gave before the change."""
    config = tiny_config()
    torch.manual_seed(5)
    reference = nn.MultiheadAttention(config.hidden_dim, config.n_heads, batch_first=True)
    torch.manual_seed(5)
    attention = act.model.Attention(config, act.model.DropoutMasks())
    for name, value in reference.state_dict().items():
        assert torch.equal(attention.state_dict()[name], value), name


def test_without_the_cvae_training_sees_the_latent_inference_uses():
    """vae=False (LeRobot's use_vae=False): no CVAE encoder, z = 0 in training as at inference, no KL."""
    policy = make_policy(vae=False)
    assert not [name for name, _ in policy.named_parameters() if name.startswith("vae_")]
    assert sum(p.numel() for p in policy.parameters()) < sum(p.numel() for p in make_policy().parameters())
    batch = make_batch()
    policy.eval()
    loss, info = policy(batch)
    assert info["kl"] == 0.0 and loss.item() == info["l1"]
    # the loss is the L1 of exactly what predict_chunk returns: the action chunk is never read as an input
    pred = policy.predict_chunk(batch["state"])
    valid = (~batch["action_pad"]).unsqueeze(-1).float()
    expected = ((pred - batch["action"]).abs() * valid).sum() / (valid.sum() * A)
    assert info["l1"] == pytest.approx(expected.item(), rel=1e-6)
    policy.train()
    loss, _ = policy(batch)
    loss.backward()
    assert all(p.grad is not None for p in policy.parameters())
    with pytest.raises(RuntimeError, match="vae=False"):
        policy.encode_latent(batch["state"], batch["action"], batch["action_pad"])


def test_a_config_saved_before_the_vae_field_builds_the_cvae():
    saved = {k: v for k, v in tiny_config().__dict__.items() if k != "vae"}
    policy = ACTPolicy(ACTConfig(**saved))
    assert policy.config.vae and hasattr(policy, "vae_encoder")


def test_cvae_encoder_first_token_only_matches_the_full_pass():
    policy = make_policy(n_vae_encoder_layers=2).eval()
    batch = make_batch()
    d = policy.config.hidden_dim
    tokens = torch.randn(B, 2 + K, d)
    ignore = torch.cat((torch.zeros(B, 2, dtype=torch.bool), batch["action_pad"]), dim=1)
    with torch.no_grad():
        full = policy.vae_encoder(tokens, policy.vae_pos, ignore)
        first = policy.vae_encoder(tokens, policy.vae_pos, ignore, first_only=True)
    assert first.shape == (B, 1, d)
    assert torch.allclose(first[:, 0], full[:, 0], atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_first_decoder_layer_over_zeros_matches_the_general_pass(training):
    """The decoder's first layer computes its self-attention over the all-zero input once for the batch
    (Attention.over_zero_inputs): the same outputs and gradients as the general pass given those zeros,
    with the same dropout masks in training."""
    config = tiny_config(dropout=0.3)
    layers = []
    for _ in range(2):
        torch.manual_seed(2)
        layer = act.model.DecoderLayer(config, act.model.DropoutMasks()).train(training)
        with torch.no_grad():  # biases start at zero, where the value path is dead: move them
            for name, p in layer.named_parameters():
                if name.endswith("bias"):
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
        layers.append(layer)
    g = torch.Generator().manual_seed(0)
    query_pos = torch.randn(1, K, config.hidden_dim, generator=g)
    memory = torch.randn(B, 2, config.hidden_dim, generator=g)
    memory_pos = torch.randn(1, 2, config.hidden_dim, generator=g)
    outs = []
    for layer, x in zip(layers, (torch.zeros(B, K, config.hidden_dim), None)):
        torch.manual_seed(7)
        layer.self_attn.dropout.masks.reseed()
        out = layer(x, query_pos, memory, memory_pos)
        out.pow(2).sum().backward()
        outs.append(out)
    assert outs[0].shape == outs[1].shape == (B, K, config.hidden_dim)
    torch.testing.assert_close(outs[1], outs[0], atol=1e-5, rtol=1e-5)
    general, over_zeros = (dict(layer.named_parameters()) for layer in layers)
    for name, p in general.items():
        torch.testing.assert_close(over_zeros[name].grad, p.grad, atol=1e-4, rtol=1e-4, msg=name)
    if training:  # the masks differ per sample, so the samples' outputs do too
        assert not torch.allclose(outs[1][0], outs[1][1])


def test_dropout_masks_drop_p_scale_the_rest_and_follow_torch_seed():
    masks = act.model.DropoutMasks()
    like = torch.empty(200_000)
    torch.manual_seed(0)
    masks.reseed()
    noise = masks.noise(like, 0.1)
    assert noise.unique().tolist() == [0.0, pytest.approx(1 / 0.9)]
    assert abs((noise == 0).float().mean().item() - 0.1) < 0.005  # 0.1 +- ~7 standard deviations
    assert abs(noise.mean().item() - 1.0) < 0.01  # expectation kept
    torch.manual_seed(0)
    masks.reseed()
    assert torch.equal(masks.noise(like, 0.1), noise)  # a step's masks are a function of torch's seed
    torch.manual_seed(1)
    masks.reseed()
    assert not torch.equal(masks.noise(like, 0.1), noise)


def test_dropout_is_identity_in_eval_mode_and_active_in_training():
    policy = make_policy(dropout=0.5)
    batch = make_batch()
    policy.train()
    torch.manual_seed(0)
    first = policy(batch)[0]
    torch.manual_seed(1)
    assert policy(batch)[0] != first  # other masks, another loss
    torch.manual_seed(0)
    assert policy(batch)[0] == first  # same seed, same masks
    policy.eval()
    assert policy(batch)[0] == policy(batch)[0]
