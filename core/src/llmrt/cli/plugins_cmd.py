"""``llmrt plugins``: installed plugins, their hooks, and each backend's availability here."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmrt.backends.selection import backend_report
from llmrt.plugins import PLUGIN_API_VERSION, get_plugin_host
from llmrt.version import __version__


def add_parser(subparsers: Any) -> tuple[str, Any]:
    """Register the sub-command; returns its name and runner."""
    parser = subparsers.add_parser("plugins", help="list installed plugins and backends")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return "plugins", run


def collect() -> dict[str, Any]:
    """Everything ``llmrt plugins`` reports, as plain data."""
    host = get_plugin_host()
    return {
        "llmrt": __version__,
        "plugin_api": PLUGIN_API_VERSION,
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version,
             "module": p.module, "api": p.api_range, "hooks": list(p.hooks)}
            for p in host.plugins
        ],
        "failed": [{"name": f.name, "distribution": f.distribution, "error": f.error,
                    "traceback": f.traceback} for f in host.failures],
        "backends": [
            {"name": s.name, "plugin": s.plugin, "priority": s.backend.priority,
             "usable": s.availability.usable, "reason": s.availability.reason}
            for s in backend_report(host)
        ],
    }


def _print_text(report: dict[str, Any]) -> None:
    print(f"llmrt {report['llmrt']} (plugin API {report['plugin_api']})\n\nPlugins:")
    for p in report["plugins"]:
        print(f"  {p['name']:<12} {p['distribution']} {p['version']}  (API {p['api']})")
        print(f"  {'':<12} hooks: {', '.join(h.removeprefix('llmrt_') for h in p['hooks']) or 'none'}")
    for f in report["failed"]:
        print(f"  {f['name']:<12} {f['distribution']}  FAILED: {f['error']}")
    print("\nBackends:")
    if not report["backends"]:
        print("  none installed; install one, e.g. `pip install llmrt-cpu` (source: ./plugins/cpu)")
    for b in report["backends"]:
        state = "usable  " if b["usable"] else "unusable"
        print(f"  {b['name']:<8} {state} priority {b['priority']:<4} {b['reason']}  [plugin {b['plugin']}]")


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 0 even when some plugins failed (they are listed)."""
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_text(report)
    return 0
