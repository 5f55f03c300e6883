"""The objects of a session: stable integer ids, editable names, and a colour that stays with the id."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from .colors import RGB, object_color
from .errors import SessionError

FIRST_ID = 1  # 0 stays free: DAVIS PNGs and most label maps use it for the background


@dataclass(frozen=True)
class ObjectInfo:
    """One object: ``id`` (never reused within a session), ``name``, display ``color`` (r, g, b)."""

    id: int
    name: str
    color: RGB


Snapshot = tuple[ObjectInfo, ...]


class ObjectRegistry:
    """Objects by id, in id order. Ids count up from `FIRST_ID` and are never handed out twice, not even
    after an undone ``add`` or a removal, so a file or a front end that names an id always means one object.
    """

    def __init__(self) -> None:
        self._objects: dict[int, ObjectInfo] = {}
        self.next_id = FIRST_ID

    def __contains__(self, obj_id: object) -> bool:
        return obj_id in self._objects

    def __iter__(self) -> Iterator[ObjectInfo]:
        return iter(self._objects.values())

    def __len__(self) -> int:
        return len(self._objects)

    @property
    def ids(self) -> list[int]:
        return list(self._objects)

    def get(self, obj_id: int) -> ObjectInfo:
        info = self._objects.get(obj_id)
        if info is None:
            known = ", ".join(str(i) for i in self._objects) or "none yet"
            raise SessionError(f"There is no object {obj_id} (objects: {known}). Add an object first.")
        return info

    def add(self, name: str | None = None) -> ObjectInfo:
        obj_id = self.next_id
        info = ObjectInfo(obj_id, _clean_name(name, obj_id), object_color(obj_id))
        self.next_id += 1
        self._objects[obj_id] = info
        self._objects = dict(sorted(self._objects.items()))
        return info

    def rename(self, obj_id: int, name: str) -> ObjectInfo:
        info = replace(self.get(obj_id), name=_clean_name(name, obj_id, required=True))
        self._objects[obj_id] = info
        return info

    def remove(self, obj_id: int) -> ObjectInfo:
        info = self.get(obj_id)
        del self._objects[obj_id]
        return info

    def snapshot(self) -> Snapshot:
        return tuple(self._objects.values())

    def restore(self, snapshot: Snapshot) -> None:
        """Put back the objects of a snapshot. ``next_id`` only ever grows, so ids stay unique."""
        self._objects = {info.id: info for info in snapshot}
        if snapshot:
            self.next_id = max(self.next_id, max(info.id for info in snapshot) + 1)


def _clean_name(name: str | None, obj_id: int, required: bool = False) -> str:
    if name is None and not required:
        return f"object {obj_id}"
    if not isinstance(name, str):
        raise TypeError(f"an object name must be a string, got {type(name).__name__}")
    name = " ".join(name.split())
    if not name:
        raise SessionError("An object name cannot be empty: type a name.")
    return name
