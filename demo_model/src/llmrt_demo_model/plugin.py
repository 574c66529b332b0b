"""llmrt plugin: the demo model is the model served when the user names none.

Registered through the entry point ``demo_model`` in group ``llmrt``; llmrt imports this module
at startup, so it may import llmrt (this distribution does not depend on it otherwise).
"""

from llmrt.plugins import hookimpl

from llmrt_demo_model import MODEL_DIR

LLMRT_PLUGIN_API = ">=1,<2"
"""The range of llmrt's plugin API versions this plugin supports."""


@hookimpl
def llmrt_default_model() -> str:
    """Return the path of the bundled demo model's folder (``MODEL_DIR``)."""
    return str(MODEL_DIR)
