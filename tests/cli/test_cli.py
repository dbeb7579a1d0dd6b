import json

import yaml
from typer.testing import CliRunner

from braid import BraidedLLM
from cli import app

runner = CliRunner()


def test_train_with_the_seeds_flat_config_then_generate_and_info(trio, tmp_path):
    (tmp_path / "train.txt").write_text("\n".join(["the braid reads the text", "a quick brown fox"] * 8))
    config = {  # the seed's fusion_config.yaml keys, plus members and data
        "batch_size": 4,
        "learning_rate": 5e-3,
        "num_epochs": 2,
        "fusion_strategy": "learned_weighted",
        "fusion_layers": [0, 1],
        "fusion_dim": 32,
        "model_configs": [{"model_name": trio[0], "role": "reasoning"}, {"model_name": trio[1]}],
        "data": {"train": str(tmp_path / "train.txt")},
        "output_dir": str(tmp_path / "out"),
        "progress": False,
    }
    (tmp_path / "fusion_config.yaml").write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["train", str(tmp_path / "fusion_config.yaml")])
    assert result.exit_code == 0, result.output
    assert "eval loss" in result.output
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert len(history["train_loss"]) == 2 * 4  # 16 lines, 10% held out -> 15 -> 4 batches x 2 epochs
    braided = BraidedLLM.from_pretrained(tmp_path / "out")
    assert braided.config.fusion_layers == [0, 1]

    gen = runner.invoke(app, ["generate", str(tmp_path / "out"), "the braid", "--max-new-tokens", "5"])
    assert gen.exit_code == 0, gen.output
    assert gen.stdout.rstrip("\n") == braided.generate("the braid", max_new_tokens=5)
    shown = runner.invoke(app, ["info", str(tmp_path / "out")])
    assert shown.exit_code == 0 and "(anchor)" in shown.output and "reasoning" in shown.output


def test_bad_train_config_names_the_field(trio, tmp_path):
    (tmp_path / "bad.yaml").write_text(
        yaml.safe_dump({"model_configs": trio[:2], "fusion_strategy": "mean", "data": {"train": "x.txt"}})
    )
    result = runner.invoke(app, ["train", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "fusion_strategy" in result.output and "learned_weighted" in result.output


def test_generate_mistakes_are_one_line_exit_2(trio, tmp_path):
    BraidedLLM(trio[:2], fusion_strategy="router", fusion_layers=[0]).save_pretrained(tmp_path / "b")
    cases = [
        ([str(tmp_path / "b"), ""], "the prompt is empty"),
        ([str(tmp_path / "b"), "hi", "--max-new-tokens", "-3"], "max_new_tokens: Input should be greater"),
        ([str(tmp_path), "hi"], "is not a saved braid (no braid_config.json)"),
        (
            [str(tmp_path / "b"), "word " * 400, "--max-new-tokens", "8"],
            "shorten the prompt or lower max_new_tokens",
        ),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, ["generate", *args], terminal_width=400)
        assert result.exit_code == 2, result.output
        ours = [
            line
            for line in result.stderr.splitlines()
            if line.strip() and not line.startswith("Loading weights")
        ]
        assert message in result.stderr and len(ours) == 1 and "Traceback" not in result.stderr, result.stderr


def test_config_and_data_mistakes_are_one_line_exit_2(trio, tmp_path):
    (tmp_path / "broken.yaml").write_text("braid:\n  model_configs: [a, b\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "empty.txt").write_text("\n\n")
    job = {"model_configs": trio[:2], "fusion_layers": [0], "data": {"train": str(tmp_path / "empty.txt")}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    cases = [
        (["train", str(tmp_path / "broken.yaml")], "is not valid YAML at line"),
        (["train", str(tmp_path / "empty.yaml")], "is empty or not a mapping"),
        (["info", str(tmp_path / "broken.yaml")], "is not valid YAML"),
        (["info", str(tmp_path)], "is not a saved braid (no braid_config.json)"),
        (["train", str(tmp_path / "job.yaml")], "has no examples"),  # before any model loads
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, args, terminal_width=400)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert message in result.stderr and len(lines) == 1 and "Loading" not in result.stderr, result.stderr
    shown = CliRunner().invoke(app, ["info", str(tmp_path / "job.yaml")], terminal_width=400)
    assert shown.exit_code == 0 and "(anchor)" in shown.stdout  # a `braid train` YAML works for info too


def test_help_is_quick_and_imports_no_torch():
    """`braid --help` and the light subcommands load no model code: torch is imported on first use."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    probe = "import sys, cli; print(sorted(m for m in ('torch', 'transformers', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cli", "--help"], env=env, capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    assert min(runs) < 1.0, runs


def seed_block(language: str, after: str) -> str:
    """The first ``language`` code block of the cheat-sheet seed after the line ``after``."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "seeds" / "cheat_sheet.md").read_text()
    return re.search(rf"```{language}\n(.*?)```", text[text.index(after) :], re.S).group(1)


def test_the_seeds_fusion_config_as_is_with_models_from_dotenv_and_data_from_a_flag(
    pico, tmp_path, monkeypatch
):
    seed_yaml = seed_block("yaml", "### Training (config/fusion_config.yaml)")
    assert "fusion_layers: [0, 4, 8, 12, 16, 20]" in seed_yaml and "model_configs" not in seed_yaml
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "fusion_config.yaml").write_text(seed_yaml)
    (tmp_path / "train.txt").write_text("\n".join(["the braid reads the text", "a quick brown fox"] * 4))
    a, b = pico("llama", layers=24, seed=1), pico("mistral", layers=24, seed=2)
    for name in ("MODEL_A_PATH", "MODEL_B_PATH", "MODEL_C_PATH", "FUSION_STRATEGY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"MODEL_A_PATH={a}\nMODEL_B_PATH={b}\nFUSION_STRATEGY=router\n")
    args = ["train", "config/fusion_config.yaml", "--data", "train.txt", "--output-dir", "out"]
    result = CliRunner().invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, result.output
    braided = BraidedLLM.from_pretrained(tmp_path / "out")
    assert [m.model_name for m in braided.config.model_configs] == [a, b]
    assert braided.config.fusion_strategy == "learned_weighted"  # the file beats FUSION_STRATEGY
    assert braided.config.fusion_layers == [0, 4, 8, 12, 16, 20]

    from braid.jobs import model_paths_from_env

    monkeypatch.setenv("MODEL_A_PATH", b)  # the environment beats .env; a flag beats both
    assert model_paths_from_env() == [b, b]
    flagged = CliRunner().invoke(app, [*args[:4], "--model", a, "--model", b, "--output-dir", "out2"])
    assert flagged.exit_code == 0, flagged.output
    assert [m.model_name for m in BraidedLLM.from_pretrained("out2").config.model_configs] == [a, b]

    (tmp_path / ".env").unlink()
    monkeypatch.delenv("MODEL_A_PATH")
    missing = CliRunner().invoke(app, ["train", "config/fusion_config.yaml"], terminal_width=400)
    assert missing.exit_code == 2
    assert "give --model PATH at least twice" in missing.stderr and "give --data FILE" in missing.stderr
