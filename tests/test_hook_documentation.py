"""Every hook and every hook argument is documented, in the code and in docs/plugin-contract.md."""

import inspect
import re
from pathlib import Path

import pytest

from llmrt.plugins import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugin-contract.md"
HOOKS = hookspecs.hook_names()


def test_there_are_hooks_for_each_lifecycle_part():
    for expected in ("llmrt_register_backends", "llmrt_register_ops", "llmrt_register_attention_backends",
                     "llmrt_register_graph_capture", "llmrt_register_quantization_methods",
                     "llmrt_register_communicators", "llmrt_register_model_architectures",
                     "llmrt_register_schedulers", "llmrt_register_block_allocators",
                     "llmrt_add_cli_arguments", "llmrt_register_server_routes"):
        assert expected in HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_docstring_covers_every_argument(name):
    spec = hookspecs.describe(name)
    doc = inspect.getdoc(spec) or ""
    assert len(doc.splitlines()[0]) > 10, f"{name} has no summary line"
    assert "Called" in doc, f"{name} does not say when it is called"
    assert ":return:" in doc, f"{name} does not say what its return means"
    for arg in inspect.signature(spec).parameters:
        assert f":param {arg}:" in doc, f"{name} does not document its argument {arg!r}"


@pytest.mark.parametrize("name", HOOKS)
def test_plugin_contract_doc_covers_every_hook_and_argument(name):
    text = DOC.read_text()
    section = re.search(rf"^### `{name}\((.*?)\)`\n(.*?)(?=^### |\Z)", text, re.M | re.S)
    assert section, f"docs/plugin-contract.md has no section for {name}"
    for arg in inspect.signature(hookspecs.describe(name)).parameters:
        assert f"`{arg}`" in section.group(2), f"docs/plugin-contract.md does not describe {name}'s {arg!r}"


def test_doc_lists_no_hook_that_does_not_exist():
    documented = re.findall(r"^### `(llmrt_\w+)\(", DOC.read_text(), re.M)
    assert sorted(documented) == sorted(HOOKS)
