"""Choosing a backend: by name, automatically by priority, and the messages when it fails."""

import logging
import types

import pytest
import torch

from llmrt.backends import Availability, Backend, MemoryInfo, select_backend
from llmrt.plugins import BackendUnavailableError, hookimpl
from llmrt.testing.plugin_host import make_plugin_host


def _backend(backend_name, prio, usable, why):
    class Fake(Backend):
        name = backend_name
        priority = prio

        def detect(self):
            return Availability(usable, why)

        def device(self):
            return torch.device("cpu")

        def memory_info(self):
            return MemoryInfo(1, 1)

    return Fake()


def _plugin(*backends):
    module = types.ModuleType("fake_backends")
    module.LLMRT_PLUGIN_API = ">=1"

    @hookimpl
    def llmrt_register_backends(register):
        for backend in backends:
            register(backend)

    module.llmrt_register_backends = llmrt_register_backends
    return module


def test_automatic_choice_is_the_highest_priority_usable_one(caplog):
    host = make_plugin_host(_plugin(_backend("slow", 1, True, "always"), _backend("fast", 50, True, "found chip"),
                                    _backend("absent", 99, False, "no chip")))
    with caplog.at_level(logging.INFO, logger="llmrt.backends"):
        choice = select_backend(host)
    assert choice.backend.name == "fast"
    assert "highest priority (50)" in choice.reason and "absent: no chip" in choice.reason
    assert "'fast' selected automatically" in caplog.text


def test_named_backend_missing_lists_installed_ones():
    host = make_plugin_host(_plugin(_backend("slow", 1, True, "always")))
    with pytest.raises(BackendUnavailableError, match="(?s)'nope' is not installed.*slow +usable: always"):
        select_backend(host, "nope")


def test_named_backend_unusable_says_why():
    host = make_plugin_host(_plugin(_backend("absent", 99, False, "no chip on the bus")))
    with pytest.raises(BackendUnavailableError, match="'absent' cannot run here: no chip on the bus"):
        select_backend(host, "absent")


def test_no_backend_installed_says_how_to_get_one():
    host = make_plugin_host()
    with pytest.raises(BackendUnavailableError, match="pip install llmrt-cpu"):
        select_backend(host)


def test_detection_that_raises_makes_the_backend_unusable_with_the_error():
    class Exploding(Backend):
        name = "boom"

        def detect(self):
            raise OSError("ioctl failed")

        def device(self):
            return torch.device("cpu")

        def memory_info(self):
            return MemoryInfo(1, 1)

    host = make_plugin_host(_plugin(Exploding()))
    with pytest.raises(BackendUnavailableError, match="detection raised OSError\\('ioctl failed'\\)"):
        select_backend(host, "boom")
