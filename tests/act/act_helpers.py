"""Shared constants of act/ CLI tests."""

# A model small enough that a CLI training step takes a few milliseconds on one thread, and no choice of
# inference after training (its rollouts of an untrained policy would take longer than the run).
TINY_MODEL = ["--hidden-dim", "16", "--feedforward-dim", "32", "--n-heads", "2", "--n-encoder-layers", "1",
              "--n-vae-encoder-layers", "1", "--latent-dim", "4", "--chunk", "5", "--batch-size", "8",
              "--threads", "1", "--no-progress",
              "--choose-inference", "0"]
