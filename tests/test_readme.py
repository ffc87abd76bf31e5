"""What the README names exists: every config key of its table is in the schema, every
preset file and benchmark script it mentions is in the repository."""

from __future__ import annotations

import re

import yaml

from conftest import PROJECT

README = (PROJECT / "README.md").read_text()


def schema_keys() -> set[str]:
    schema = yaml.safe_load((PROJECT / "workflow/schemas/config.schema.yaml").read_text())
    keys = set()

    def walk(node: dict, prefix: str) -> None:
        for name, sub in node.get("properties", {}).items():
            keys.add(prefix + name)
            walk(sub, f"{prefix}{name}.")

    walk(schema, "")
    return keys


def table_keys() -> set[str]:
    keys = set()
    for cell in re.findall(r"^\| `([a-z_.{},]+)` \|", README, flags=re.M):
        match = re.fullmatch(r"([a-z_.]*)\{([a-z_,]+)\}", cell)
        names = [match.group(1) + n for n in match.group(2).split(",")] if match else [cell]
        keys.update(names)
    return keys


def test_every_config_key_in_the_readme_table_is_in_the_schema():
    keys = table_keys()
    assert len(keys) > 30
    assert keys - schema_keys() == set()


def test_every_preset_and_benchmark_the_readme_names_exists():
    for path in set(re.findall(r"`((?:config|bench)/[\w./]+\.(?:yaml|py))`", README)):
        assert (PROJECT / path).is_file(), path
