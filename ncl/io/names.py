"""Image names: the ids under which an image set's images (and their codes) are known, the path
below the set's root without the extension, `/`-separated."""

from __future__ import annotations


def class_of(name: str) -> str | None:
    """The class of an image named `<class>/<...>/<image>`: its first folder, as in the
    class-folder layouts pairs are mined from (None when the image lies directly in the image
    set's root)."""
    head, sep, _ = name.partition("/")
    return head if sep and head else None
