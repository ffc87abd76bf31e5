"""The README and docs/ say only what exists: every command they show runs (a dry run, or
the argument parser of the script it calls), every link and config key they name exists,
the headline numbers come from docs/results.md, and docs/configuration.md is the schema."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT, SHARED_DATA
from skinkd.edge.cli import parser as cli_parser
from skinkd.runs.config_doc import keys, render

README = PROJECT / "README.md"
# results.md is generated from runs; the other pages are written by hand.
PAGES = [README, *sorted(p for p in (PROJECT / "docs").glob("*.md") if p.name != "results.md")]
SCHEMA_PATH = PROJECT / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def shown_commands(page: Path) -> list[tuple[str, str]]:
    """(page:line, command) for every command in the page's ```bash blocks."""
    commands, block, start = [], None, 0
    lines = page.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if line.strip() == "```bash":
            block, start = [], number
        elif line.strip() == "```" and block is not None:
            text = "\n".join(block).replace("\\\n", " ")
            for offset, command in enumerate(text.splitlines()):
                if command.strip() and not command.lstrip().startswith("#"):
                    commands.append((f"{page.name}:{start + 1 + offset}", command.strip()))
            block = None
        elif block is not None:
            block.append(line)
    return commands


COMMANDS = [command for page in PAGES for command in shown_commands(page)]
MAKE_TARGETS = set(re.findall(r"^([a-z]+):", (PROJECT / "Makefile").read_text(), flags=re.M))


def flags_of(args: list[str]) -> list[str]:
    return [a.split("=")[0] for a in args if a.startswith("--")]


def check_files(args: list[str]) -> None:
    for arg in args:
        for word in shlex.split(arg) if " " in arg else [arg]:
            if re.match(r"(config|bench|envs)/[\w./-]+\.(yaml|py)$", word):
                assert (PROJECT / word).is_file(), f"{word} does not exist"


def dry_run(args: list[str]) -> None:
    """``snakemake -n`` of a documented command in the project, as a user would type it."""
    args = [a for a in args if a not in ("--touch",)]
    if "--report" in args:
        index = args.index("--report")
        del args[index : index + 2]
    for folder in ("ham10000", "kaggle-sample", "isic2018-test", "ph2"):
        presets = " ".join(args)
        if folder.split("-")[0] in presets and not (SHARED_DATA / folder).is_dir():
            pytest.skip(f"{SHARED_DATA / folder} not found (see ../shared/data/README.md)")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "-n", "--quiet", "rules"],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    text = result.stdout + result.stderr
    if any("/path/to/" in a for a in args):
        # A placeholder path: the run must stop at start and name it.
        assert result.returncode != 0 and "/path/to/" in text, text[-2000:]
        return
    assert result.returncode == 0, text[-3000:]


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_documented_command_runs_or_parses(where, command):
    words = shlex.split(command)
    env = [w for w in words if re.fullmatch(r"[A-Z_]+=\S*", w)]
    words = [w for w in words if w not in env]
    program, args = words[0], words[1:]
    check_files(args)
    if program == "make":
        assert args and args[0] in MAKE_TARGETS, f"make has no target {args[:1]}"
        for arg in args[1:]:
            assert re.fullmatch(r"(ARGS|CORES|TEST_WORKERS|FUZZ_EXAMPLES)=.*", arg), arg
    elif program == ".venv/bin/snakemake":
        if "--unlock" in args or "--workflow-profile" in args:
            # Unlocking acts at once; the Slurm profile is run by tests/test_slurm.py.
            profile = args[args.index("--workflow-profile") + 1] if "--workflow-profile" in args else None
            assert profile is None or (PROJECT / profile / "config.yaml").is_file()
            return
        dry_run(args)
    elif program == ".venv/bin/python" and args[0] == "-m":
        spec = importlib.util.find_spec(args[1])
        assert spec is not None, f"no module {args[1]}"
        source = Path(spec.origin).read_text()
        assert all(flag in source for flag in flags_of(args[2:])), command
    elif program == ".venv/bin/python":
        script = PROJECT / args[0]
        assert script.is_file(), args[0]
        assert all(f'"{flag}"' in script.read_text() for flag in flags_of(args[1:])), command
    elif program == "skinkd":
        cli_parser().parse_args(args)
    elif program == "pip":
        extras = re.fullmatch(r"\.\[(\w+)\]", args[-1]).group(1)
        assert f"\n{extras} = [" in (PROJECT / "pyproject.toml").read_text()
    elif program == "conda":
        envs = {yaml.safe_load(p.read_text()).get("name") for p in (PROJECT / "envs").glob("*.yaml")}
        assert args[0] in ("env", "activate") and (args[0] == "env" or args[1] in envs), command
    elif program == "snakemake":
        assert "--use-conda" in args, "plain snakemake is shown for the conda set-up only"
    else:
        raise AssertionError(f"{where}: no check knows the command {command!r}")


def test_the_command_check_fails_on_a_missing_preset_and_an_unknown_flag():
    with pytest.raises(AssertionError, match="config/nowhere.yaml"):
        test_every_documented_command_runs_or_parses(
            "probe", "make run ARGS=\"--configfile config/nowhere.yaml\""
        )
    with pytest.raises(AssertionError):
        test_every_documented_command_runs_or_parses("probe", ".venv/bin/python bench/latency.py --nope")
    with pytest.raises(SystemExit):
        test_every_documented_command_runs_or_parses("probe", "skinkd predict")


def test_the_readme_is_short_and_every_page_has_commands():
    assert len(README.read_text().splitlines()) <= 250
    names = {p.name for p in PAGES}
    assert {"usage.md", "configuration.md", "method.md", "edge.md", "reliability.md"} <= names
    assert {where.split(":")[0] for where, _ in COMMANDS} >= {"README.md", "usage.md", "edge.md"}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_points_at_a_file(page):
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if not re.match(r"[a-z]+://", target):
            assert (page.parent / target).exists(), f"{page.name} links to {target}"


def schema_paths() -> set[str]:
    return {path.replace("[]", "") for path, _ in keys(SCHEMA)}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_config_key_a_page_names_is_in_the_schema(page):
    top = set(SCHEMA["properties"])
    named = set()
    for cell in re.findall(r"`([a-z_]+(?:\.[a-z_0-9{},]+)+)`", page.read_text()):
        if cell.split(".")[0] not in top or re.search(r"\.(py|md|yaml|csv|json|png|npz)$", cell):
            continue
        match = re.fullmatch(r"([a-z_.]*)\{([a-z_,]+)\}", cell)
        named.update([match.group(1) + n for n in match.group(2).split(",")] if match else [cell])
    assert named - schema_paths() == set()


def test_the_headline_numbers_come_from_the_results_document():
    table = [line for line in README.read_text().split("## Headline results")[1].splitlines()
             if line.startswith("|")]  # fmt: skip
    assert 3 <= len(table) <= 5
    numbers = re.findall(r"\d\.\d{3}", "\n".join(table))
    results = (PROJECT / "docs/results.md").read_text()
    assert numbers and [n for n in numbers if n not in results] == []


def test_the_configuration_page_is_the_schema():
    page = (PROJECT / "docs/configuration.md").read_text()
    assert page == render(SCHEMA, "workflow/schemas/config.schema.yaml"), (
        "docs/configuration.md is stale: run .venv/bin/python -m skinkd.runs.config_doc"
    )


def test_the_configuration_page_lists_every_key_with_its_description():
    page = render(SCHEMA)
    for path, node in keys(SCHEMA):
        assert node.get("description"), f"{path} has no description in the schema"
        description = " ".join(node["description"].split())
        if "." not in path and "properties" in node:
            # A top-level section is a heading with its description below it.
            assert f"## `{path}`\n\n{description}\n" in page
            continue
        row = next(line for line in page.splitlines() if line.startswith(f"| `{path}` |"))
        assert description.replace("|", "\\|") in row
        if "enum" in node:
            assert all(f"`{value}`" in row for value in node["enum"])


def test_a_schema_change_changes_the_configuration_page():
    changed = yaml.safe_load(SCHEMA_PATH.read_text())
    changed["properties"]["split"]["properties"]["seed"]["default"] = 7
    assert render(changed) != render(SCHEMA)
    assert "| `split.seed` | integer | `7` |" in render(changed)


RULES = set(re.findall(r"^rule (\w+):", "\n".join(
    p.read_text() for p in [PROJECT / "Snakefile", *(PROJECT / "workflow/rules").glob("*.smk")]
), flags=re.M))  # fmt: skip


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_rule_a_page_names_exists(page):
    text = " ".join(page.read_text().split())
    named = set()
    for group in re.findall(r"\brules? ((?:`\w+`(?:,? and |, | or )?)+)", text):
        named.update(re.findall(r"`(\w+)`", group))
    assert named - RULES == set()


def resolves(dotted: str) -> bool:
    """``skinkd.a.b.name``: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
            break
        except ImportError:
            continue
    for name in parts[cut:]:
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_module_and_name_a_page_names_exists(page):
    text = page.read_text()
    paths = set(re.findall(r"`(skinkd/[\w./]+)`", text))
    names = set(re.findall(r"`(skinkd\.[\w.]+)`", text))
    assert [p for p in paths if not (PROJECT / p).exists()] == []
    assert [n for n in names if not resolves(n)] == []
    assert resolves("skinkd.nn.fit.Adafactor") and not resolves("skinkd.nn.fit.Adafactors")
