"""Core never branches on the device: no cuda/hip/xla/tpu in core's code (docstrings may name them)."""

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core" / "src" / "llmrt"
DEVICE_WORDS = re.compile(r"\b(cuda|hip|xla|rocm|tpu)\b", re.IGNORECASE)


def _code_lines(path: Path):
    """Lines of code, skipping docstrings and comments (documentation may name devices)."""
    in_docstring = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""')
        if in_docstring:
            if quotes:
                in_docstring = False
            continue
        if stripped.startswith('"""'):
            in_docstring = quotes == 1
            continue
        yield number, line.split("#", 1)[0]


def test_core_code_has_no_device_specific_names():
    offenders = [
        f"{path.relative_to(CORE)}:{number}: {code.strip()}"
        for path in CORE.rglob("*.py")
        for number, code in _code_lines(path)
        if DEVICE_WORDS.search(code)
    ]
    assert not offenders, "device-specific code in core:\n" + "\n".join(offenders)
