"""
The AVA label map (``.pbtxt``): class ids, names and groups (pose / person-object / person-person),
and the 60 classes AVA v2.1 / v2.2 evaluate, shipped with the package.

detectron2-free and torch-free, like :mod:`ava_eval.csv_io` (the CSV files).

- Label map ``.pbtxt``: ``item { name: "..." id: N }`` blocks (v2.1 layout) or ``label { name:
  "..." label_id: N label_type: ... }`` (v2.2 layout), one field per line or all on one line.
  Its ids are the evaluated classes; classes are ordered by ascending id (the order of the
  official 60-class models). ``label_type: PERSON_MOVEMENT`` marks the mutually exclusive pose
  classes; without label types AVA's id ranges apply (1-14 pose, 15-63 object manipulation,
  64-80 person interaction), so the 60 evaluated classes have 13 pose classes (id 2 is not
  evaluated). The AVA v2.1 / v2.2 evaluated list ships as ``ava_labelmap_v2.2.pbtxt``.
  Label maps are parsed per block, so the one-line layout works too.
"""
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

__all__ = ["AVA_LABEL_MAP_FILE", "GROUP_ORDER", "LabelMap", "read_label_map", "ava_class_list"]

PathLike = Union[str, Path]

logger = logging.getLogger(__name__)


def _require_file(path: PathLike, what: str) -> None:
    """FileNotFoundError / IsADirectoryError naming ``what`` and the path."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a directory; expected a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")


# The 60 classes evaluated in AVA v2.1 and v2.2 (ActivityNet 2018 / 2019 lists), package data.
AVA_LABEL_MAP_FILE = Path(__file__).with_name("ava_labelmap_v2.2.pbtxt")

# ---- Label map -----------------------------------------------------------------------------
GROUP_ORDER = ("pose", "person_object", "person_person")
_GROUP_OF_LABEL_TYPE = {"PERSON_MOVEMENT": "pose", "OBJECT_MANIPULATION": "person_object",
                        "PERSON_INTERACTION": "person_person"}
_AVA_GROUP_ID_RANGES = (("pose", 1, 14), ("person_object", 15, 63), ("person_person", 64, 80))
_ITEM_RE = re.compile(r"\b(?:item|label)\s*\{(.*?)\}", re.DOTALL)
_NAME_RE = re.compile(r'(?<![\w])name\s*:\s*"([^"]*)"')
_ID_RE = re.compile(r"(?<![\w])(?:label_)?id\s*:\s*(-?\d+)")
_TYPE_RE = re.compile(r"(?<![\w])label_type\s*:\s*([A-Za-z_]+)")


@dataclass(eq=False)
class LabelMap(Mapping):
    """
    A parsed label map, ascending ids. ``ids[i]`` is the dataset id of contiguous class index i,
    ``names[i]`` its name, ``groups[i]`` "pose", "person_object", "person_person" (None: unknown).

    It is also a read-only mapping id -> name (what the evaluation uses as class whitelist).
    """

    ids: List[int]
    names: List[str]
    groups: List[Optional[str]]
    _index: Dict[int, int] = field(init=False, repr=False)

    def __post_init__(self):
        self._index = {c: i for i, c in enumerate(self.ids)}

    def __getitem__(self, class_id: int) -> str:
        return self.names[self._index[class_id]]

    def __iter__(self):
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __eq__(self, other):
        if isinstance(other, LabelMap):
            return (self.ids, self.names, self.groups) == (other.ids, other.names, other.groups)
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    __hash__ = None

    @property
    def pose_class_indices(self) -> List[int]:
        return [i for i, g in enumerate(self.groups) if g == "pose"]

    @property
    def class_groups(self) -> Dict[str, List[int]]:
        return {g: [i for i, gi in enumerate(self.groups) if gi == g] for g in GROUP_ORDER}


def _group_from_ava_id(action_id: int) -> Optional[str]:
    for group, lo, hi in _AVA_GROUP_ID_RANGES:
        if lo <= action_id <= hi:
            return group
    return None


def read_label_map(path: PathLike, require_groups: bool = True) -> LabelMap:
    """
    Read an AVA ``.pbtxt`` label map (layouts in the module docstring).

    Args:
        path: the pbtxt file.
        require_groups (bool): an id outside AVA's 1..80 without ``label_type`` is an error (its
            class group is unknown); False: its group is None (the evaluation needs no groups).
    Returns:
        LabelMap, classes in ascending id order.
    Raises:
        FileNotFoundError; ValueError naming the file and the item for no item, an item without
        exactly one name and one id, an id < 1, a repeated id, an unknown label_type.
    """
    _require_file(path, "label map")
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: the label map is not a UTF-8 text file ({e})") from None
    _check_label_map_blocks(text, path)
    entries, seen = [], set()
    for k, body in enumerate(_ITEM_RE.findall(text), start=1):
        name, ids, ltype = _NAME_RE.search(body), _ID_RE.findall(body), _TYPE_RE.search(body)
        if name is None or len(ids) != 1:
            raise ValueError(f"{path}: item #{k} lacks a 'name' or an 'id' (needs one name: "
                             f"\"...\" and one id: N), got {body.strip()!r}")
        class_id = int(ids[0])
        if class_id < 1:
            raise ValueError(f"{path}: item #{k} has id {class_id}; ids must be >= 1")
        if class_id in seen:
            raise ValueError(f"{path}: id {class_id} appears twice (item #{k})")
        seen.add(class_id)
        if ltype is not None:
            if ltype.group(1) not in _GROUP_OF_LABEL_TYPE:
                raise ValueError(f"{path}: item #{k} has unknown label_type {ltype.group(1)}")
            group = _GROUP_OF_LABEL_TYPE[ltype.group(1)]
        else:
            group = _group_from_ava_id(class_id)
            if group is None and require_groups:
                raise ValueError(
                    f"{path}: id {class_id} has no label_type and is outside AVA's 1..80, so its "
                    "class group (pose / person_object / person_person) is unknown; add a "
                    "label_type line"
                )
        entries.append((class_id, name.group(1), group))
    if not entries:
        raise ValueError(f"{path}: no 'item {{ name: ... id: ... }}' blocks found; "
                         "not an AVA label map")
    entries.sort(key=lambda e: e[0])
    return LabelMap([e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries])


def _check_label_map_blocks(text: str, path: PathLike) -> None:
    """
    Every ``item {`` / ``label {`` must be closed before the next one opens and before the end of
    the file: a truncated label map would otherwise lose its last classes without a word.
    """
    opens = [m.start() for m in re.finditer(r"\b(?:item|label)\s*\{", text)]
    for k, start in enumerate(opens, start=1):
        close = text.find("}", start)
        nxt = opens[k] if k < len(opens) else len(text)
        if close < 0 or close > nxt:
            line = text.count("\n", 0, start) + 1
            raise ValueError(
                f"{path}: item #{k} (line {line}) is not closed with '}}' before "
                f"{'the next item' if k < len(opens) else 'the end of the file'}: the label map "
                f"is cut or malformed ({k - 1} complete item(s) before it, {len(opens)} opened)"
            )


def ava_class_list() -> LabelMap:
    """The 60 classes evaluated in AVA v2.1 / v2.2 (package data): ids 1, 3, ..., 80; the pose
    classes are indices 0..12."""
    return read_label_map(AVA_LABEL_MAP_FILE)
