"""The exception tree drawn in curvegan/errors.py's docstring is the one the code defines."""

from __future__ import annotations

import re

import curvegan
from curvegan import errors


def drawn_tree() -> dict[str, str | None]:
    """Each class the docstring draws under CurveganError, with the class drawn above it."""
    parents: dict[str, str | None] = {}
    stack: list[str] = []  # the chain of classes above the current line, by depth
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^([│ ]*)(?:[├└]── )?([A-Z]\w*Error)\b", line)
        if match is None or match[2] == "TimeoutError":
            continue
        depth = len(match[1]) // 4 + (1 if "──" in line else 0)
        del stack[depth:]
        parents[match[2]] = stack[-1] if stack else None
        stack.append(match[2])
    return parents


def test_the_drawn_tree_is_the_class_tree() -> None:
    drawn = drawn_tree()
    defined = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.CurveganError)
    }
    assert sorted(drawn) == sorted(defined)
    for name, parent in drawn.items():
        bases = [b.__name__ for b in defined[name].__bases__ if issubclass(b, errors.CurveganError)]
        assert bases == ([parent] if parent else []), name
    assert all(getattr(curvegan, name) is cls for name, cls in defined.items())  # all exported
