"""`act-train`: train an ACT policy on recorded episodes (the command line; the run is act/train_setup.py).

    act-train --data recordings/pp50 --out runs/pp50                     # one process
    act-train --data recordings/pp50 --out runs/pp50 --steps 4000 --resume   # continue a stopped run
    act-train --data recordings/pp50 --out runs/pp50 --eval-every 500    # + success on random spawns
    torchrun --standalone --nproc_per_node 2 -m act.train --data recordings/pp50 --out runs/ddp
                                                                         # DDP (gloo on CPU, nccl on GPU)

What the run folder holds and how --resume stays exact: :mod:`act.train_setup`. Every flag is a field of
:class:`act.train_config.TrainConfig` or :class:`act.config.ACTConfig`, with its help beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings

from act.config import ACTConfig
from act.train_config import AUTO_MODEL_FLAGS, DATA_DEFINED, TrainConfig
from teleop.errors import EXIT_ERROR, ToolkitError, one_line


def build_parser() -> argparse.ArgumentParser:
    from act.flags import add_dataclass_flags

    parser = argparse.ArgumentParser(prog="act-train", description="Train an ACT policy on recorded episodes.")
    add_dataclass_flags(parser, TrainConfig, required=("data", "out"))
    add_dataclass_flags(parser, ACTConfig, skip=DATA_DEFINED, aliases={"chunk_size": ["--chunk"]},
                        title="model and optimizer (ACTConfig)")
    for action in parser._actions:  # flags whose default depends on others (TrainConfig.resolve_model_flags)
        if action.dest in AUTO_MODEL_FLAGS:
            action.default = None
            action.help = f"{action.help.rsplit(' (default:', 1)[0]} Default: {AUTO_MODEL_FLAGS[action.dest]}"
    return parser


def parse_args(argv=None) -> tuple[TrainConfig, dict]:
    """(the training flags, the model flags) from the command line, checked."""
    args = vars(build_parser().parse_args(argv))
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    train = TrainConfig(**{k: v for k, v in args.items() if k in train_names})
    model = {k: v for k, v in args.items() if k not in train_names}
    return train.validate(), model


def main(argv=None) -> int:
    from act.train_setup import run

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        # A user reads "warning: <what and why>", not a source location.
        print(f"warning: {one_line(message)}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        train, model_flags = parse_args(argv)
        run(train, model_flags)
    except ToolkitError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
