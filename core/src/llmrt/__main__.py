"""``python -m llmrt``: the same as the ``llmrt`` command."""

import sys

from llmrt.cli.main import main

sys.exit(main())
