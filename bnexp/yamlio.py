"""YAML in and out, strictly: configs, ``--set`` values and sweep.yaml.

PyYAML's safe loader executes nothing, but it accepts what a config must not
hold: a repeated key (the later one silently wins), aliases that expand to an
exponential number of values (which then hang whatever walks them), recursive
aliases, nesting deep enough to exhaust the stack, and text that is not UTF-8.
``read_yaml`` and ``parse_value`` refuse each with one line that names where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import files
from .errors import BnexpError

MAX_BYTES = 16 << 20  # a config or sweep.yaml; a generated 100k-value grid is ~2 MB
MAX_DEPTH = 64  # mapping/list nesting
MAX_VALUES = 1_000_000  # values after expanding aliases


class YamlError(BnexpError):
    """Text that is not a YAML document bnexp accepts; one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


def _where(mark) -> str:
    return f"line {mark.line + 1}" if mark is not None else "?"


def _check_depth(text: str, source: str) -> None:
    """Nesting depth from the event stream (the parser is iterative; the
    composer that builds nodes recurses, so it must not see 20,000 levels)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlError([f"{source}: nested deeper than {MAX_DEPTH} levels at "
                                 f"{_where(event.start_mark)}"])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _expanded_size(node, source: str) -> int:
    """How many values the document holds once every alias is expanded
    (computed once per node, so a billion-laughs document costs nothing)."""
    sizes: dict[int, int] = {}
    on_stack: set[int] = set()

    def size(n) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in on_stack:
            raise YamlError([f"{source}: a recursive alias at {_where(n.start_mark)} (a value "
                             "that contains itself)"])
        on_stack.add(key)
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in n.value)
        else:
            total = 1
        on_stack.discard(key)
        sizes[key] = min(total, MAX_VALUES + 1)
        return sizes[key]

    return size(node)


def _duplicates(node, source: str) -> list[str]:
    """Every repeated key in every mapping, as ``dotted.key`` with both lines."""
    problems, seen_nodes = [], set()
    stack = [(node, "")]
    while stack:
        n, prefix = stack.pop()
        if id(n) in seen_nodes:
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[str, Any] = {}
            for k, v in n.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else None
                dotted = f"{prefix}.{name}" if prefix else str(name)
                if name is not None and name != "<<":
                    if name in first:
                        problems.append((k.start_mark.line, f"{source}: {dotted}: duplicate key "
                                         f"at {_where(k.start_mark)} (first at "
                                         f"{_where(first[name].start_mark)}); keep one"))
                    else:
                        first[name] = k
                stack.append((v, dotted))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((v, f"{prefix}[{i}]") for i, v in enumerate(n.value))
    return [text for _, text in sorted(problems)]


def loads(text: str, source: str) -> Any:
    """Parse one YAML document strictly; ``source`` names it in errors."""
    try:
        _check_depth(text, source)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            if _expanded_size(node, source) > MAX_VALUES:
                raise YamlError([f"{source}: expands to more than {MAX_VALUES:,} values through "
                                 "aliases (&anchor / *alias); write the values out"])
            dupes = _duplicates(node, source)
            if dupes:
                raise YamlError(dupes)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError([f"{source}: invalid YAML{where}: {problem}"]) from None
    except RecursionError:
        raise YamlError([f"{source}: nested too deeply to read"]) from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise YamlError([f"{source}: {str(exc).splitlines()[0]}"]) from None


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file, or one line saying why it cannot be read (not a
    regular file: a device, a fifo, a folder; larger than MAX_BYTES)."""
    try:
        data = files.read_bytes(path, MAX_BYTES, what)
    except files.FileError as exc:
        raise YamlError([str(exc)]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError([f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}); save it as UTF-8"]) from None


def read_yaml(path: str | Path) -> Any:
    """Read and strictly parse a YAML file."""
    return loads(read_text(path, "YAML file"), str(path))


def parse_value(text: str, source: str) -> Any:
    """A ``--set``/``--grid`` value: YAML, strictly; empty text is null."""
    return loads(text, source) if text.strip() else None


class _Dumper(yaml.SafeDumper):
    """Block style for mappings, flow style for lists: ``hidden: [100, 100]``."""


_Dumper.add_representer(
    list, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))
_Dumper.add_representer(
    tuple, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)
