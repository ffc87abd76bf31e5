"""docs/configuration.md from the config's JSON schema: every key with its type, default,
allowed values and description, so that the page cannot drift from what the workflow checks.

    .venv/bin/python -m skinkd.runs.config_doc [--schema ...] [--out docs/configuration.md]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from skinkd.atomic import write_text

SCHEMA = Path("workflow/schemas/config.schema.yaml")
OUT = Path("docs/configuration.md")
INTRO = """\
# Configuration

Generated from `{schema}` by the command below; do not edit by hand (a test fails when
this page and the schema differ).

```bash
.venv/bin/python -m skinkd.runs.config_doc
```

`config.yaml` is the default run. Presets in `config/` are layered on top with
`--configfile` (later files win, key by key). The schema checks every value when the
workflow starts and fills in the defaults below; a bad value stops the run with the key's
path and what is allowed, for example
`split.group_by: 'patient' is not one of ['lesion', 'image']`.
"""


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f"`{text}`" if text != "" else '`""`'


def type_of(node: Mapping[str, Any]) -> str:
    """The key's type in words: ``integer``, ``list of number``, ``string or mapping``."""
    for choice in ("oneOf", "anyOf"):
        if choice in node:
            return " or ".join(type_of(option) for option in node[choice])
    kind = node.get("type", "any")
    if kind == "array":
        items = type_of(node.get("items", {}))
        return "list of entries" if items == "section" else f"list of {items}"
    if kind == "object":
        return "section" if "properties" in node else "mapping"
    return " or ".join(kind) if isinstance(kind, list) else kind


def _items(count: int) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def allowed_of(node: Mapping[str, Any]) -> str:
    """The values the schema accepts, beyond the type: choices, bounds, pattern, length."""
    for choice in ("oneOf", "anyOf"):
        if choice in node:
            parts = [allowed_of(option) for option in node[choice]]
            return "; ".join(part for part in parts if part)
    parts = []
    if "enum" in node:
        parts.append(", ".join(_code(v) for v in node["enum"]))
    for keyword, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                          ("exclusiveMaximum", "<")):  # fmt: skip
        if keyword in node:
            parts.append(f"{sign} {node[keyword]}")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    low, high = node.get("minItems"), node.get("maxItems")
    if low is not None and low == high:
        parts.append(f"exactly {_items(low)}")
    elif low is not None or high is not None:
        parts.append(" and ".join(
            text for text in (low is not None and f"at least {_items(low)}",
                              high is not None and f"at most {_items(high)}") if text
        ))  # fmt: skip
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        items = allowed_of(node["items"])
        if items:
            parts.append(f"each {items}")
    return "; ".join(parts)


def keys(node: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every key under ``node`` as (dotted path, schema), depth first; ``[]`` marks the
    entries of a list of sections."""
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        yield path, sub
        yield from keys(sub, f"{path}.")
        items = sub.get("items")
        if isinstance(items, dict) and "properties" in items:
            yield from keys(items, f"{path}[].")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _row(path: str, node: Mapping[str, Any]) -> str:
    default = _code(node["default"]) if "default" in node else ""
    if type_of(node) == "section":
        default = ""
    cells = (f"`{path}`", type_of(node), default, allowed_of(node), node.get("description", ""))
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _is_section(node: Mapping[str, Any]) -> bool:
    return "properties" in node or "properties" in node.get("items", {})


def render(schema: Mapping[str, Any], schema_path: str | Path = SCHEMA) -> str:
    """The configuration page: the top-level keys first, then one table per section."""
    header = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    top = {n: s for n, s in schema["properties"].items() if not _is_section(s)}
    sections = {n: s for n, s in schema["properties"].items() if _is_section(s)}
    lines = [INTRO.format(schema=schema_path), "## Top-level keys", "", *header]
    lines += [_row(name, node) for name, node in top.items()]
    for name, node in sections.items():
        lines += ["", f"## `{name}`", ""]
        if node.get("description"):
            lines += [node["description"], ""]
        if "properties" in node:
            rows = keys(node, f"{name}.")
        else:
            rows = [(name, node), *keys(node["items"], f"{name}[].")]
        lines += [*header, *(_row(path, sub) for path, sub in rows)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, default=SCHEMA)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    schema = yaml.safe_load(args.schema.read_text())
    write_text(render(schema, args.schema), args.out)


if __name__ == "__main__":
    main()
