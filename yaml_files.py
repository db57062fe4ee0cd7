"""The one way a YAML file the user wrote is read (run configuration, sweep space).

:func:`read_yaml` parses with ``yaml.SafeLoader``'s types (YAML 1.1: an unquoted date is a date,
``5.5e-4`` is text that :class:`field_rules.Number` accepts as a number) and refuses, naming the
file, what would otherwise be guessed: a path that is not a regular file (a directory, a device
such as ``/dev/zero``, a FIFO: refused before it is opened, so reading never hangs), a file that
is not UTF-8 or not YAML, an empty file (nothing but whitespace, comments or ``null``: it would
silently mean "all defaults"), and a key given twice in one mapping (YAML would keep the last
value without a word). Imports neither Nautilus nor torch.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from cli_errors import UserError
from cli_errors import one_line

MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *anchor`, where a repeated key is the point


class YamlFileError(UserError, ValueError):
    """A YAML file cannot be used (the message names the file and what to do)."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice."""

    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(f"key {key!r} appears twice (lines {first_line} and {second_line})")
        self.key, self.first_line, self.second_line = key, first_line, second_line


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in the same mapping, at any depth."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader words that error itself
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKeyError(key, first, line)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, name: str = "<text>") -> Any:
    """``text`` parsed like a file by :func:`read_yaml` (duplicate keys raise
    :class:`DuplicateKeyError`, other problems ``yaml.YAMLError``, whose position names
    ``name``)."""
    stream = io.StringIO(text)
    stream.name = name  # what YAML's error marks call the text
    return yaml.load(stream, Loader=UniqueKeyLoader)  # a SafeLoader: plain data only


def read_yaml(
    path: str | Path,
    what: str,
    example: str,
    error: type[Exception] = YamlFileError,
) -> Any:
    """The document of the YAML file at ``path``, or ``error`` (one line naming ``what`` and
    ``path``; ``example`` says where a good file is found, e.g. "configs/default.yaml is a
    complete example").

    Refused: a missing path, a directory, anything but a regular file (checked before it is
    opened), text that is not UTF-8 or not YAML, an empty document (only whitespace, comments
    or null) and a key repeated within one mapping (named with both line numbers).
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist; check the path ({example})")
    if path.is_dir():
        raise error(f"{what} {path} is a directory; give the YAML file inside it")
    if not path.is_file():
        raise error(
            f"{what} {path} is not a regular file (a device, pipe or socket); give a YAML file "
            f"({example})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror}") from problem
    except UnicodeDecodeError as problem:
        raise error(f"{what} {path} is not a UTF-8 text file; give a YAML file") from problem
    try:
        document = parse_yaml(text, str(path))
    except DuplicateKeyError as problem:
        raise error(
            f"{what} {path}: key {_shown(problem.key)} is given twice in the same mapping "
            f"(lines {problem.first_line} and {problem.second_line}); keep one of them"
        ) from problem
    except yaml.YAMLError as problem:
        raise error(f"{what} {path} is not valid YAML: {one_line(problem)}") from problem
    if document is None:
        raise error(
            f"{what} {path} is empty (nothing but whitespace, comments or null); write the "
            f"settings into it ({example})"
        )
    return document


def _shown(key: Any) -> str:
    return f"'{key}'" if isinstance(key, str) else repr(key)
