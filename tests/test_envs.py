"""Conda environment files: valid YAML, pinned, and every conda: directive points at one."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import PROJECT

ENV_FILES = sorted((PROJECT / "envs").glob("*.yaml"))


@pytest.mark.parametrize("path", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_file_parses_with_pinned_dependencies(path):
    env = yaml.safe_load(path.read_text())
    assert "conda-forge" in env["channels"]
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.startswith("python ") or d.startswith("python=") for d in deps)
    unpinned = [d for d in deps if not re.search(r"[=<>]", d)]
    assert unpinned == [], f"{path.name}: unpinned {unpinned}"


def test_every_conda_directive_names_an_existing_env_file():
    rules = "\n".join(p.read_text() for p in (PROJECT / "workflow/rules").glob("*.smk"))
    names = set(re.findall(r'^ENV_\w+ = "\.\./\.\./(envs/[\w.-]+\.yaml)"', rules, flags=re.M))
    assert names, "common.smk should define the env file paths"
    for name in names:
        assert (PROJECT / name).is_file(), name
    # Every rule that runs a script names its environment; target-only rules run nothing.
    blocks = re.split(r"^rule ", rules, flags=re.M)[1:]
    for block in blocks:
        if "    script:" in block:
            env = re.search(r"^\s+conda:\n\s+(\S+)", block, flags=re.M)
            assert env and env.group(1).startswith("ENV_"), block.splitlines()[0]
