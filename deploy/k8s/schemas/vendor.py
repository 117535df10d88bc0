"""Refresh the vendored Kubernetes JSON schemas from a kubernetes-validate wheel (PyPI), pruned to what our
manifests use: ``python deploy/k8s/schemas/vendor.py <unpacked wheel dir> v1.33.0-local-strict``.

Each output file is self-contained (its ``$defs`` hold only the definitions it reaches, descriptions dropped)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KINDS = ["deployment-apps-v1", "service-v1", "poddisruptionbudget-policy-v1", "configmap-v1", "secret-v1"]
PREFIX = "/api/_definitions.json#/$defs/"


def _rewrite(node: Any, seen: set[str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                continue
            if key == "$ref" and isinstance(value, str):
                name = value.rsplit("/", 1)[-1]
                seen.add(name)
                out[key] = f"#/$defs/{name}"
            else:
                out[key] = _rewrite(value, seen)
        return out
    if isinstance(node, list):
        return [_rewrite(item, seen) for item in node]
    return node


def main(wheel_dir: str, version: str) -> None:
    source = Path(wheel_dir) / "kubernetes_validate" / "kubernetes-json-schema" / version
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    target = Path(__file__).parent
    for kind in KINDS:
        seen: set[str] = set()
        root = _rewrite(json.loads((source / f"{kind}.json").read_text()), seen)
        defs: dict[str, Any] = {}
        while pending := sorted(seen - defs.keys()):
            for name in pending:
                defs[name] = _rewrite(definitions[name], seen)
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        root["$comment"] = f"kubernetes-validate {version}, pruned by deploy/k8s/schemas/vendor.py"
        root["$defs"] = dict(sorted(defs.items()))
        (target / f"{kind}.json").write_text(json.dumps(root, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
