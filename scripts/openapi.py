#!/usr/bin/env python3
"""Writes openapi.json from openapi.yaml (the document's source), or with
--check fails when openapi.json is not what openapi.yaml gives.

    scripts/openapi.py            # after editing openapi.yaml
    scripts/openapi.py --check    # what scripts/test.sh runs

The local server serves openapi.json at /openapi.json (compiled in), and the
contract tests check their answers against it; the JSON copy spares the Rust
side a YAML parser.
"""
import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "openapi.yaml"
TARGET = ROOT / "openapi.json"


def main() -> int:
    document = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print("openapi.json is not what openapi.yaml gives: run scripts/openapi.py", file=sys.stderr)
            return 1
        print("openapi.json matches openapi.yaml")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
