"""Size: unzipped bytes of each built function and layer (.aws-sam/build) against Lambda's limit."""

from __future__ import annotations

from typing import Any

import build_layer

from benchmarks.common import BUILD, ensure_build
from tools.local.template import load_template


def main() -> dict[str, Any]:
    ensure_build()
    app = load_template(BUILD.parent.parent / "template.yaml", built=True)
    parts: dict[str, int] = {}
    totals: dict[str, int] = {}
    for name, spec in app.functions.items():
        parts[name] = build_layer.tree_bytes(spec.code_dir)
        layers = [d.parent for d in spec.layer_dirs]  # layer_dirs are the python/ folders
        for layer in layers:
            parts[layer.name] = build_layer.tree_bytes(layer)
        totals[name] = parts[name] + sum(parts[layer.name] for layer in layers)
    return {
        "parts": parts,
        "totals": totals,
        "limit": build_layer.LAMBDA_LIMIT,
        "target": build_layer.TARGET,
    }


if __name__ == "__main__":
    figures = main()
    for name, size in figures["parts"].items():
        print(f"{name:<20} {size:>13,} bytes  {size / 2**20:7.1f} MiB")
    for name, size in figures["totals"].items():
        print(
            f"{name} + layers: {size:,} bytes ({size / 2**20:.1f} MiB), "
            f"{size / figures['limit']:.1%} of {figures['limit']:,}, "
            f"target {figures['target']:,}: {'met' if size <= figures['target'] else 'MISSED'}"
        )
