"""Reading taxonomy and requirements files: every problem named with its line, nothing half-read."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from flask_babel import gettext

from portal.category_mapping.exceptions import FileProblems
from portal.category_mapping.models import ATTRIBUTE_TYPES

PATH_SEPARATOR = " > "
_GOOGLE_LINE = re.compile(r"^(\d+)\s+-\s+(\S.*)$")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
REQUIREMENT_COLUMNS = ("category_id", "code", "name_en", "name_ru", "type", "unit", "required", "allowed_values")
_YES = {"yes", "y", "true", "1", "да", "required"}
_NO = {"no", "n", "false", "0", "нет", "optional", ""}
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Node:
    id: int
    parent_id: int | None
    name: str
    path: str
    depth: int


@dataclass
class Requirement:
    category_id: int
    code: str
    name_en: str
    name_ru: str
    type: str
    unit: str
    required: bool
    allowed_values: list[str] = field(default_factory=list)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, line: int, text: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(gettext("Line %(line)s: %(problem)s", line=line, problem=text))

    def raise_if_any(self, what: str) -> None:
        if self.items:
            raise FileProblems(what, self.items)


def parse_taxonomy(text: str) -> list[Node]:
    """Nodes parents first, from either layout a marketplace has its taxonomy in.

    Google's (``ID - A > B > C``, the parent found by its path) or a CSV ``id,parent_id,name`` as a
    PIM exports it (the path built by following parents, so cycles and unknown parents can happen).
    """
    lines = text.lstrip("\ufeff").splitlines()
    first = next((line for line in lines if line.strip() and not line.startswith("#")), None)
    if first is None:
        raise FileProblems(gettext("The taxonomy file"), [gettext("The file holds no categories.")])
    if first.replace(" ", "").lower().startswith("id,parent_id,name"):
        return _parse_parent_csv(lines)
    return _parse_google(lines)


def _parse_google(lines: list[str]) -> list[Node]:
    problems = _Problems()
    rows: list[tuple[int, int, list[str]]] = []  # line, id, path parts
    seen_ids: dict[int, int] = {}
    seen_paths: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _GOOGLE_LINE.match(line.strip())
        if not match:
            problems.add(number, gettext("expected “ID - Category > Subcategory”, found “%(text)s”.", text=line.strip()[:80]))
            continue
        category_id, parts = int(match.group(1)), [part.strip() for part in match.group(2).split(">")]
        if any(not part for part in parts):
            problems.add(number, gettext("the path “%(path)s” has an empty level.", path=match.group(2)))
            continue
        if category_id in seen_ids:
            problems.add(number, gettext("the id %(id)s is already used on line %(other)s.", id=category_id,
                                         other=seen_ids[category_id]))
            continue
        if tuple(parts) in seen_paths:
            problems.add(number, gettext("the category “%(path)s” is already listed on line %(other)s.",
                                         path=PATH_SEPARATOR.join(parts), other=seen_paths[tuple(parts)]))
            continue
        seen_ids[category_id] = number
        seen_paths[tuple(parts)] = number
        rows.append((number, category_id, parts))
    by_path = {tuple(parts): category_id for _, category_id, parts in rows}
    nodes: list[Node] = []
    for number, category_id, parts in rows:
        parent_id = None
        if len(parts) > 1:
            parent_id = by_path.get(tuple(parts[:-1]))
            if parent_id is None:
                problems.add(number, gettext("the parent “%(parent)s” of this category is not in the file.",
                                             parent=PATH_SEPARATOR.join(parts[:-1])))
                continue
        nodes.append(Node(category_id, parent_id, parts[-1], PATH_SEPARATOR.join(parts), len(parts)))
    problems.raise_if_any(gettext("The taxonomy file"))
    return sorted(nodes, key=lambda node: (node.depth, node.path))


def _parse_parent_csv(lines: list[str]) -> list[Node]:
    problems = _Problems()
    reader = csv.reader(io.StringIO("\n".join(lines)))
    entries: dict[int, tuple[int, int | None, str]] = {}  # id -> line, parent, name
    for number, cells in enumerate(reader, 1):
        if number == 1 or not any(cell.strip() for cell in cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 3 or not cells[0].strip().isdigit() or (cells[1].strip() and not cells[1].strip().isdigit()) \
                or not cells[2].strip():
            problems.add(number, gettext("expected “id,parent_id,name” with numeric ids and a name."))
            continue
        category_id, parent = int(cells[0]), int(cells[1]) if cells[1].strip() else None
        if category_id in entries:
            problems.add(number, gettext("the id %(id)s is already used on line %(other)s.", id=category_id,
                                         other=entries[category_id][0]))
            continue
        entries[category_id] = (number, parent, cells[2].strip())
    nodes: list[Node] = []
    for category_id, (number, parent, name) in entries.items():
        if parent is not None and parent not in entries:
            problems.add(number, gettext("the parent id %(parent)s is not in the file.", parent=parent))
            continue
        chain, current = [name], parent
        visited = {category_id}
        while current is not None:
            if current in visited:
                problems.add(number, gettext("the category is its own ancestor (a cycle through id %(id)s).", id=current))
                break
            visited.add(current)
            if current not in entries:
                break  # named on that category's own line
            chain.append(entries[current][2])
            current = entries[current][1]
        else:
            path = PATH_SEPARATOR.join(reversed(chain))
            nodes.append(Node(category_id, parent, name, path, len(chain)))
    problems.raise_if_any(gettext("The taxonomy file"))
    paths: dict[str, int] = {}
    for node in nodes:
        if node.path in paths:
            problems.add(entries[node.id][0], gettext("the category “%(path)s” is already listed on line %(other)s.",
                                                      path=node.path, other=entries[paths[node.path]][0]))
        paths[node.path] = node.id
    problems.raise_if_any(gettext("The taxonomy file"))
    return sorted(nodes, key=lambda node: (node.depth, node.path))


def parse_requirements(text: str, known_categories: set[int]) -> list[Requirement]:
    """Requirement rows, checked against the taxonomy in the database; any problem rejects the file."""
    problems = _Problems()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    absent = [name for name in ("category_id", "code", "type") if name not in header]
    if absent:
        raise FileProblems(gettext("The requirements file"), [
            gettext("The header lacks the column(s) %(columns)s; expected %(expected)s.",
                    columns=", ".join(absent), expected=",".join(REQUIREMENT_COLUMNS))])
    reader.fieldnames = header
    result: list[Requirement] = []
    seen: dict[tuple[int, str], int] = {}
    for number, row in enumerate(reader, 2):
        cells = {key: (value or "").strip() for key, value in row.items() if key is not None}
        if not any(cells.values()):
            continue
        raw_id = cells.get("category_id", "")
        if not raw_id.isdigit():
            problems.add(number, gettext("the category id “%(value)s” is not a number.", value=raw_id))
            continue
        category_id = int(raw_id)
        if category_id not in known_categories:
            problems.add(number, gettext("the category %(id)s is not in the taxonomy.", id=category_id))
            continue
        code = cells.get("code", "")
        if not _CODE.match(code):
            problems.add(number, gettext("the attribute code “%(code)s” must be lowercase letters, digits and "
                                         "underscores, starting with a letter.", code=code))
            continue
        kind = cells.get("type", "").lower()
        if kind not in ATTRIBUTE_TYPES:
            problems.add(number, gettext("the type “%(type)s” is not one of %(types)s.", type=cells.get("type", ""),
                                         types=", ".join(ATTRIBUTE_TYPES)))
            continue
        flag = cells.get("required", "yes").lower()
        if flag not in _YES | _NO:
            problems.add(number, gettext("“required” must be yes or no, not “%(value)s”.", value=cells.get("required")))
            continue
        allowed = [value.strip().lower() for value in cells.get("allowed_values", "").split("|") if value.strip()]
        if kind == "enum" and not allowed:
            problems.add(number, gettext("an enum attribute needs its allowed values, separated by “|”."))
            continue
        if kind != "enum" and allowed:
            problems.add(number, gettext("only enum attributes have allowed values; “%(code)s” is %(type)s.",
                                         code=code, type=kind))
            continue
        if (category_id, code) in seen:
            problems.add(number, gettext("the attribute “%(code)s” of category %(id)s is already on line %(other)s.",
                                         code=code, id=category_id, other=seen[(category_id, code)]))
            continue
        seen[(category_id, code)] = number
        result.append(Requirement(category_id, code, cells.get("name_en") or code, cells.get("name_ru", ""), kind,
                                  cells.get("unit", ""), flag in _YES, list(dict.fromkeys(allowed))))
    problems.raise_if_any(gettext("The requirements file"))
    if not result:
        raise FileProblems(gettext("The requirements file"), [gettext("The file holds no requirements.")])
    return result
