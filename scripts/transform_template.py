#!/usr/bin/env python3
"""Expand template.yaml's SAM transform offline, the way CloudFormation would.

Usage: transform_template.py [TEMPLATE] [OUTPUT.json]

Runs samtranslator (the library behind `AWS::Serverless-2016-10-31`) on the
template and writes the resulting plain CloudFormation template as JSON, so
that cfn-lint can check the resources SAM generates (RestApi, Deployment,
Stage, Permissions, Roles, ...), which it does not see in the SAM source.

No AWS access: the IAM managed-policy name -> ARN map that samtranslator would
fetch from IAM is replaced by a stub. The template names no managed policy by
short name (its policies are inline statements; SAM adds X-Ray's by full ARN),
so an empty map is exact; a short name would make the transform fail here,
which is what we want.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

# samtranslator reads the region for partition/ARN decisions.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


# "Feature '...' not available in Feature Toggle Config": the service-side
# feature toggles are not ours to set; their defaults are what applies.
logging.getLogger("samtranslator.feature_toggle").setLevel(logging.ERROR)

SERVERLESS_CODE_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


def replace_local_code_uris(template: dict[str, Any]) -> None:
    """What `sam package` does: local code paths become S3 URIs (dummy here)."""
    for name, res in (template.get("Resources") or {}).items():
        prop = SERVERLESS_CODE_PROPERTIES.get(res.get("Type", ""))
        props = res.get("Properties") or {}
        if prop and isinstance(props.get(prop, "."), str) and not str(props.get(prop, ".")).startswith("s3://"):
            props[prop] = f"s3://bucket/{name}.zip"
            res["Properties"] = props


class StubManagedPolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader (which calls IAM)."""

    def load(self) -> dict[str, str]:
        return {}


def main() -> int:
    src = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    out = sys.argv[2] if len(sys.argv) > 2 else "-"
    with open(src, encoding="utf-8") as f:
        template: dict[str, Any] = yaml_parse(f.read())
    replace_local_code_uris(template)
    try:
        # No parameter values: the defaults from the template apply, as in
        # `sam validate`; intrinsic references are kept for cfn-lint to check.
        result = transform(template, {}, StubManagedPolicyLoader())  # type: ignore[arg-type]
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{src}: SAM transform error: {cause.message}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2, sort_keys=False) + "\n"
    if out == "-":
        sys.stdout.write(text)
    else:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
