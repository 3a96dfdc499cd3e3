"""Constraint checks from botocore's service model: what the service validates and
botocore does not (enum values, patterns, maximum lengths and values)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# The models write Java-style classes such as [\p{L}||\p{M}||...]+ meaning "any printable
# text"; Python's re has no \p{..}: such a pattern is checked as "no control characters".
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_PRINTABLE_OR_SPACE = re.compile(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$")  # also tab, newline, return


@lru_cache(maxsize=8)
def service_model(service: str):
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def model_of(raw: dict, service: str):
    """botocore's ServiceModel over a model already read as JSON (runlog.startrun.raw_model):
    its shapes without reading the model's file again."""
    from botocore.model import ServiceModel

    return ServiceModel(raw, service_name=service)


def loader_model(service: str) -> dict:
    """The service's model as JSON, through botocore's Loader (for installs where the model
    file cannot be found directly)."""
    from botocore.loaders import create_loader

    return create_loader().load_service_model(service, "service-2")


def skeleton(shape, *, member_names: bool = False) -> Any:
    """What `aws ... --generate-cli-skeleton` prints for a shape: the input's members with
    empty values, or (member_names) the output's with their names as values."""
    from botocore.utils import ArgumentGenerator

    return ArgumentGenerator(use_member_names=member_names).generate_skeleton(shape)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    if "\\p{" in pattern:
        return _PRINTABLE_OR_SPACE if "\\n" in pattern else _PRINTABLE
    return re.compile(pattern)


def constraint_errors(shape, value: Any, path: str) -> list[str]:
    """Messages for every constraint of `shape` that `value` breaks (types are botocore's job)."""
    errors: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        enum = meta.get("enum") or getattr(shape, "enum", None)
        if enum and value not in enum:
            errors.append(f"{path}: {value!r} is not one of {', '.join(enum)}")
        if "min" in meta and len(value) < meta["min"]:
            errors.append(f"{path}: {value!r} is shorter than {meta['min']} characters")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} characters, at most {meta['max']} allowed")
        pattern = meta.get("pattern")
        if pattern and not enum and not _compiled(pattern).fullmatch(value):
            errors.append(f"{path}: {value!r} does not match the pattern {pattern}")
    elif kind in ("integer", "long") and isinstance(value, int):
        if "min" in meta and value < meta["min"]:
            errors.append(f"{path}: {value} is less than the minimum {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} is more than the maximum {meta['max']}")
    elif kind == "structure" and isinstance(value, dict) and not meta.get("document"):
        for name, member in shape.members.items():
            if name in value:
                errors.extend(constraint_errors(member, value[name], f"{path}.{name}" if path else name))
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items, at most {meta['max']} allowed")
        for index, item in enumerate(value):
            errors.extend(constraint_errors(shape.member, item, f"{path}[{index}]"))
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} entries, at most {meta['max']} allowed")
        for key, item in value.items():
            errors.extend(constraint_errors(shape.key, key, f"{path} key"))
            errors.extend(constraint_errors(shape.value, item, f"{path}[{key}]"))
    return errors

