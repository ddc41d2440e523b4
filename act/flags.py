"""Dataclass fields -> argparse flags, with each field's docstring as its help.

A field `batch_size: int = 64` followed by a string literal becomes `--batch-size N` with that
string as help. bool fields become --name / --no-name (a `bool | None` field: neither flag leaves None,
"decide for me"); tuple/list fields take several values.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing


def field_docs(cls) -> dict[str, str]:
    """The string literal that follows each annotated field in the class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, *, skip=(), aliases=None,
                        required=(), title: str | None = None) -> list[str]:
    """Add one flag per field of `cls` (except `skip`); returns the field names added."""
    aliases = aliases or {}
    group = parser.add_argument_group(title) if title else parser
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        flags = [flag, *aliases.get(f.name, ())]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        help_text = docs.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        kwargs = dict(dest=f.name, help=help_text)
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            if hint not in (bool, typing.Optional[bool]) and default is not None:  # None: the help says
                kwargs["help"] = f"{help_text} (default: {default!r})" if help_text else None
        if hint in (bool, typing.Optional[bool]):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (list, tuple):
            item = typing.get_args(hint)[0]
            kwargs.update(nargs="+", type=item)
        else:
            # `int | None` / `float | None`: the flag takes the type; None stays "not given"
            kwargs["type"] = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        group.add_argument(*flags, **kwargs)
        names.append(f.name)
    return names
