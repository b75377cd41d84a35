"""Classes that installed packages contribute through an entry-point group.

Strategies and drift checks are found the same way (a name -> a subclass of the seam's
base class); one broken package is logged and skipped so it cannot hide the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def installed_classes(group: str, base: type[T], reserved: Iterable[str], kind: str) -> dict[str, type[T]]:
    """`{cls.name: cls}` for every entry point of `group` that loads a subclass of `base`
    whose name is not `reserved` (the built-ins' names); `kind` names the seam in the log."""
    from importlib.metadata import entry_points

    taken = set(reserved)
    found: dict[str, type[T]] = {}
    for point in entry_points(group=group):
        try:
            cls = point.load()
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise TypeError(f"{point.value} is not a {base.__name__} subclass")
            if cls.name in taken:
                raise ValueError(f"its name {cls.name!r} is a built-in {kind}'s")
            found[cls.name] = cls
        except Exception as exc:  # one broken package must not hide the others
            log.error("%s entry point %s is unusable: %s", kind, point.name, exc)
    return found
