import json

import pytest

from act.config import ACTConfig


def test_defaults_are_the_cpu_sized_ones_and_valid():
    c = ACTConfig().validate()
    assert (c.state_dim, c.action_dim, c.camera_names) == (39, 4, ())
    assert (c.hidden_dim, c.feedforward_dim, c.n_heads) == (128, 256, 8)  # BENCHMARKS.md, "ACT recipe"
    assert (c.n_encoder_layers, c.n_decoder_layers, c.n_vae_encoder_layers) == (2, 1, 1)
    assert (c.latent_dim, c.kl_weight, c.chunk_size, c.dropout) == (32, 10.0, 20, 0.1)
    assert (c.lr, c.weight_decay, c.lr_backbone) == (3e-4, 1e-4, 1e-5)


@pytest.mark.parametrize("changes, message", [
    (dict(hidden_dim=100, n_heads=8), "not divisible by n_heads"),
    (dict(chunk_size=0), "chunk_size=0"),
    (dict(state_dim=2.5), "state_dim=2.5"),
    (dict(n_decoder_layers=True), "n_decoder_layers=True"),
    (dict(hidden_dim=6, n_heads=3, feedforward_dim=8), None),  # valid: 6 % 3 == 0, even
    (dict(hidden_dim=9, n_heads=3), "must be even"),
    (dict(dropout=1.0), "dropout=1.0"),
    (dict(kl_weight=-1.0), "kl_weight"),
    (dict(lr=0.0), "lr=0"),
    (dict(weight_decay=float("nan")), "weight_decay"),
    (dict(camera_names=("top", "top")), "unique"),
    (dict(camera_names=("",)), "non-empty"),
    (dict(camera_names=("top",), hidden_dim=6, n_heads=3), "divisible by 4"),
    (dict(camera_names=("top",), image_size=(16, 64)), "image_size"),
])
def test_validate_names_the_field_to_change(changes, message):
    config = ACTConfig(**changes)
    if message is None:
        assert config.validate() is config
    else:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
            config.validate()


def test_dict_round_trip_through_json():
    config = ACTConfig(camera_names=("corner", "gripperPOV"), image_size=(96, 128), chunk_size=30,
                       hidden_dim=64, n_heads=4, kl_weight=5.0)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["camera_names"] == ["corner", "gripperPOV"]
    rebuilt = ACTConfig.from_dict(data)
    assert rebuilt == config
    assert isinstance(rebuilt.camera_names, tuple) and isinstance(rebuilt.image_size, tuple)


def test_from_dict_rejects_unknown_keys_by_name():
    data = ACTConfig().to_dict()
    data["hiden_dim"] = 256
    with pytest.raises(ValueError, match="hiden_dim"):
        ACTConfig.from_dict(data)


def test_from_dict_validates_and_fills_missing_keys_with_defaults():
    assert ACTConfig.from_dict({"chunk_size": 7}) == ACTConfig(chunk_size=7)
    with pytest.raises(ValueError, match="n_heads"):
        ACTConfig.from_dict({"hidden_dim": 100})
