"""``llmrt plugins`` on this installation: every first-party plugin, with real availability."""

import json

from llmrt.cli.main import main


def test_plugins_command_lists_first_party_plugins_and_backends(capsys, fresh_plugins):
    assert main(["plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = {p["name"] for p in report["plugins"]}
    assert {"core", "cpu", "cuda", "rocm", "tpu", "quant"} <= names
    backends = {b["name"]: b for b in report["backends"]}
    assert backends["cpu"]["usable"] and "cores" in backends["cpu"]["reason"]
    for name in ("cuda", "rocm", "tpu"):
        assert backends[name]["reason"], f"{name} gives no reason"


def test_plugins_command_text_output(capsys, fresh_plugins):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "Plugins:" in out and "Backends:" in out and "cpu" in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("llmrt ")


def test_unknown_backend_exits_nonzero_with_a_list(capsys, fresh_plugins):
    assert main(["generate", "--backend", "warp-drive", "--model", "/nonexistent", "--prompt", "x"]) == 1
    err = capsys.readouterr().err
    assert "backend 'warp-drive' is not installed" in err and "cpu" in err
