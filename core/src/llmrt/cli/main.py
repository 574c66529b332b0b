"""``llmrt``: the command-line entry point; sub-commands live in their own modules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from llmrt.version import __version__

Command = Callable[[argparse.Namespace], int]

SUBCOMMANDS = ("llmrt.cli.plugins_cmd", "llmrt.cli.generate_cmd", "llmrt.cli.serve_cmd", "llmrt.cli.bench_cmd")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    """The top-level parser with every sub-command; returns it and the command runners."""
    import importlib

    from llmrt.plugins import PLUGIN_API_VERSION, get_plugin_host

    parser = argparse.ArgumentParser(prog="llmrt", description="LLM inference and serving runtime.")
    parser.add_argument("--version", action="version",
                        version=f"llmrt {__version__} (plugin API {PLUGIN_API_VERSION})")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Command] = {}
    host = get_plugin_host()
    for module_name in SUBCOMMANDS:
        module = importlib.import_module(module_name)
        name, run = module.add_parser(subparsers)
        host.add_cli_arguments(name, subparsers.choices[name])
        runners[name] = run
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--version"]:  # answer without loading plugins
        from llmrt.plugins import PLUGIN_API_VERSION

        print(f"llmrt {__version__} (plugin API {PLUGIN_API_VERSION})")
        return 0
    from llmrt.plugins.errors import BackendUnavailableError, PluginError

    try:
        parser, runners = build_parser()
        args = parser.parse_args(args_list)
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.command is None:
            parser.print_help()
            return 2
        return runners[args.command](args)
    except (BackendUnavailableError, PluginError, FileNotFoundError, ValueError) as exc:
        logging.getLogger("llmrt").debug("error details", exc_info=True)
        print(f"llmrt: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
