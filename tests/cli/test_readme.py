"""The README's examples run: the quick-start script exists and the check example works."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from fest.loader import import_catalogue
from medloop.cli import app
from medloop.store.db import make_engine
from medloop.store.migrate import upgrade
from tests.reference import DEMO, REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_quick_start_is_exactly_the_two_dev_commands_and_ci_runs_the_test_one():
    block = re.search(r"## Quick start.*?```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["./dev demo", "./dev test"]
    assert "./dev test" in (REPO / ".ci" / "run").read_text()


def test_the_check_example_in_the_readme_finds_the_warfarin_nsaid_interaction(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    import_catalogue(engine, DEMO)
    request = re.search(r"echo '(.*?)' \| \.venv/bin/medloop check --json", README, re.S).group(1)
    result = CliRunner().invoke(app, ["check", "--db", sqlite_url, "--json"], input=request)
    assert result.exit_code == 0, result.output
    alerts = json.loads(result.stdout)["alerts"]
    assert any(a["kind"] == "interaction" and a["severity"] == "avoid" for a in alerts)
