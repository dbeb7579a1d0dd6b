"""`braid tune` validates its inputs before Ray starts."""

import yaml
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def test_bad_tasks_yaml_is_refused_before_any_work(tmp_path):
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(yaml.safe_dump({"tasks": [{"name": "x", "type": "poetry"}]}))
    result = runner.invoke(app, ["tune", "--tasks", str(tasks)])
    assert result.exit_code == 2 and "poetry" in result.output


def test_bad_space_and_options(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"space": {"strategies": ["moe"]}}))
    result = runner.invoke(app, ["tune", "--space", str(space)])
    assert result.exit_code == 2 and "moe" in result.output
    result = runner.invoke(app, ["tune", "--search", "grid"])
    assert result.exit_code == 2 and "search" in result.output


def test_space_naming_models_outside_the_pool(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"space": {"pool": ["gpt-5", "prose-llama"]}}))
    result = runner.invoke(app, ["tune", "--space", str(space)])
    assert result.exit_code == 2 and "gpt-5" in result.output
