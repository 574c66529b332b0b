"""Discovery through entry points: allow/deny lists, broken and incompatible plugins."""

import logging
import sys
import textwrap
from dataclasses import dataclass

import pluggy
import pytest

from llmrt.backends import select_backend
from llmrt.plugins import BackendUnavailableError, PluginError, hookspecs
from llmrt.plugins import loader as loader_module
from llmrt.plugins.host import PluginHost
from llmrt.plugins.loader import load_plugins

GOOD = """
    import torch
    from llmrt.backends import Availability, Backend, MemoryInfo
    from llmrt.plugins import hookimpl
    LLMRT_PLUGIN_API = ">=1,<2"

    class Toy(Backend):
        name = "{name}"
        priority = 5
        def detect(self): return Availability.yes("emulated")
        def device(self): return torch.device("cpu")
        def memory_info(self): return MemoryInfo(1 << 30, 1 << 30)

    @hookimpl
    def llmrt_register_backends(register):
        register(Toy())
"""


@dataclass
class FakeDist:
    name: str
    version: str = "9.9"


@dataclass
class FakeEntryPoint:
    """Stands in for an installed package's entry point of group ``llmrt``."""

    name: str
    module: str
    dist: FakeDist

    @property
    def value(self):
        return self.module

    def load(self):
        import importlib

        return importlib.import_module(self.module)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def write(module: str, source: str) -> str:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        created.append(module)
        return module

    yield write
    for module in created:
        sys.modules.pop(module, None)


def _load(monkeypatch, *entry_points):
    monkeypatch.setattr(loader_module, "discover_entry_points", lambda: sorted(entry_points, key=lambda e: e.name))
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return PluginHost(pm, load_plugins(pm)), pm


def _ep(name, module):
    return FakeEntryPoint(name, module, FakeDist(f"llmrt-{name}"))


def test_good_plugin_is_loaded_with_its_hooks(monkeypatch, plugin_dir):
    plugin_dir("good_plugin", GOOD.format(name="toy"))
    host, _ = _load(monkeypatch, _ep("toy", "good_plugin"))
    info = next(p for p in host.plugins if p.name == "toy")
    assert info.distribution == "llmrt-toy" and info.version == "9.9"
    assert info.hooks == ("llmrt_register_backends",)
    assert "toy" in host.backends()


def test_loading_twice_is_harmless(monkeypatch, plugin_dir):
    plugin_dir("good_plugin2", GOOD.format(name="toy2"))
    host, pm = _load(monkeypatch, _ep("toy2", "good_plugin2"))
    again = load_plugins(pm)
    assert again.loaded == [] and again.failed == []
    assert len(host.backends()) == 1


def test_plugin_raising_at_import_is_reported_with_traceback(monkeypatch, plugin_dir, caplog):
    plugin_dir("broken_plugin", "raise RuntimeError('driver library missing')\n")
    with caplog.at_level(logging.WARNING, logger="llmrt.plugins"):
        host, _ = _load(monkeypatch, _ep("broken", "broken_plugin"))
    failure = host.failure_for("broken")
    assert "driver library missing" in failure.error and "Traceback" in failure.traceback
    assert "llmrt-broken" in caplog.text and "driver library missing" in caplog.text
    with pytest.raises(BackendUnavailableError, match="(?s)not installed.*llmrt-broken.*driver library missing"):
        select_backend(host, "broken")


def test_incompatible_api_range_is_refused_naming_versions(monkeypatch, plugin_dir):
    plugin_dir("future_plugin", GOOD.format(name="future").replace('">=1,<2"', '">=2,<3"'))
    host, _ = _load(monkeypatch, _ep("future", "future_plugin"))
    error = host.failure_for("future").error
    assert "'future' 9.9" in error and ">=2,<3" in error and hookspecs.PLUGIN_API_VERSION in error
    assert "future" not in host.backends()


def test_missing_api_declaration_is_refused(monkeypatch, plugin_dir):
    plugin_dir("undeclared_plugin", GOOD.format(name="undeclared").replace('LLMRT_PLUGIN_API = ">=1,<2"', ""))
    host, _ = _load(monkeypatch, _ep("undeclared", "undeclared_plugin"))
    assert "declares no LLMRT_PLUGIN_API" in host.failure_for("undeclared").error


def test_misnamed_hook_is_named_with_a_suggestion(monkeypatch, plugin_dir):
    source = GOOD.format(name="typo").replace("def llmrt_register_backends", "def llmrt_register_backend")
    plugin_dir("typo_plugin", source)
    host, _ = _load(monkeypatch, _ep("typo", "typo_plugin"))
    error = host.failure_for("typo").error
    assert "'llmrt_register_backend'" in error and "did you mean 'llmrt_register_backends'" in error


def test_hook_with_unknown_argument_is_refused(monkeypatch, plugin_dir):
    source = GOOD.format(name="args").replace("def llmrt_register_backends(register)",
                                              "def llmrt_register_backends(register, device)")
    plugin_dir("args_plugin", source)
    host, _ = _load(monkeypatch, _ep("args", "args_plugin"))
    assert "does not match the hook contract" in host.failure_for("args").error


def test_duplicate_backend_names_name_both_plugins(monkeypatch, plugin_dir):
    plugin_dir("dup_a", GOOD.format(name="same"))
    plugin_dir("dup_b", GOOD.format(name="same"))
    host, _ = _load(monkeypatch, _ep("a", "dup_a"), _ep("b", "dup_b"))
    with pytest.raises(PluginError, match="backend 'same' is registered twice: by plugin 'a' and by plugin 'b'"):
        host.backends()


def test_hook_raising_names_the_plugin(monkeypatch, plugin_dir):
    source = GOOD.format(name="raiser").replace("register(Toy())", "raise ValueError('bad firmware')")
    plugin_dir("raiser_plugin", source)
    host, _ = _load(monkeypatch, _ep("raiser", "raiser_plugin"))
    with pytest.raises(PluginError, match="plugin 'raiser' raised in llmrt_register_backends.*bad firmware"):
        host.backends()


def test_allow_list_and_deny_list(monkeypatch, plugin_dir):
    plugin_dir("allow_a", GOOD.format(name="alpha"))
    plugin_dir("allow_b", GOOD.format(name="beta"))
    eps = (_ep("alpha", "allow_a"), _ep("beta", "allow_b"))
    monkeypatch.setenv("LLMRT_PLUGINS", "beta")
    host, _ = _load(monkeypatch, *eps)
    assert [e.key for e in host.backends()] == ["beta"]
    monkeypatch.delenv("LLMRT_PLUGINS")
    monkeypatch.setenv("LLMRT_DISABLED_PLUGINS", "llmrt-beta")
    host, _ = _load(monkeypatch, *eps)
    assert [e.key for e in host.backends()] == ["alpha"]


def test_a_distribution_with_unreadable_metadata_does_not_stop_discovery(monkeypatch, caplog):
    class Broken:
        _path = "/site-packages/half_installed-1.0.dist-info"

        @property
        def name(self):
            raise loader_module.importlib_metadata.PackageNotFoundError("No package metadata was found.")

    real = list(loader_module.importlib_metadata.distributions())
    monkeypatch.setattr(loader_module.importlib_metadata, "distributions", lambda: [Broken(), *real])
    with caplog.at_level(logging.WARNING, logger="llmrt.plugins"):
        names = [ep.name for ep in loader_module.discover_entry_points()]
    assert "cpu" in names
    assert "half_installed-1.0.dist-info" in caplog.text
