"""Make llmrt's source trees importable as installed distributions, without pip.

For a machine that has every third-party dependency but cannot install (no network, an old
setuptools): writes a ``NAME-VERSION.dist-info`` (METADATA and entry_points.txt, read from each
pyproject.toml) per distribution into TARGET and prints the PYTHONPATH to use, so that plugin
discovery through entry points works as after ``pip install -e``.

    export PYTHONPATH=$(python3 plugins/cuda/benchmarks/dev_env.py /tmp/site core plugins/cuda)
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib


def write_dist_info(project: Path, target: Path) -> Path:
    """Write the dist-info of the distribution in ``project``; return its ``src`` folder."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    info = target / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    groups = meta.get("entry-points", {})
    if "scripts" in meta:
        groups = {**groups, "console_scripts": meta["scripts"]}
    lines = [
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
        for group, entries in groups.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(lines))
    return (project / "src").resolve()


if __name__ == "__main__":
    site = Path(sys.argv[1])
    paths = [str(site)] + [str(write_dist_info(Path(p), site)) for p in sys.argv[2:]]
    print(":".join(paths))
