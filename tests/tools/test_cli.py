"""`braid tools list|run` and `braid mcp serve` argument handling."""

import json

import yaml
from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def test_tools_list_prints_a_table():
    result = runner.invoke(app, ["tools", "list"])
    assert result.exit_code == 0, result.output
    assert "web_search" in result.output and "extract_content" in result.output and "query*" in result.output


def test_tools_run(tmp_path, web):
    cfg = tmp_path / "tools.yaml"
    cfg.write_text(
        yaml.safe_dump({"tools": {"search": {"duckduckgo_url": f"{web.base}/html/", "min_interval_s": 0}}})
    )
    result = runner.invoke(
        app, ["tools", "run", "web_search", json.dumps({"query": "t", "maxResults": 1}), "--config", str(cfg)]
    )
    assert result.exit_code == 0, result.output
    assert "en.wikipedia.org" in result.output


def test_tools_run_reports_errors():
    bad_json = runner.invoke(app, ["tools", "run", "web_search", "{nope"])
    assert bad_json.exit_code == 2 and "not JSON" in bad_json.output
    bad_arg = runner.invoke(app, ["tools", "run", "web_search", '{"maxResults": 3}'])
    assert bad_arg.exit_code == 1 and "'query'" in bad_arg.output


def test_mcp_serve_rejects_unknown_transport():
    result = runner.invoke(app, ["mcp", "serve", "--transport", "carrier-pigeon"])
    assert result.exit_code == 2 and "transport" in result.output
