#!/usr/bin/env python3
"""Validates Kubernetes manifests the way `kubectl apply` would have the API server check them.

    validate_manifests.py SCHEMA_DIR FILE...

Every document of every FILE:
- built-in kinds: kubernetes-validate (PyPI) in strict mode (unknown fields are errors) against
  Kubernetes 1.28 (the oldest version the deployment supports) and the newest schema the package ships;
- monitoring.coreos.com kinds (Prometheus Operator CRDs): the CRD's openAPIV3Schema vendored in
  SCHEMA_DIR (`<plural>.<version>.yaml`), made strict as the API server's field validation is: an object
  schema with `properties` accepts no other field unless it says `x-kubernetes-preserve-unknown-fields`.
One line per document and version; exit 1 when any fails, 2 when a kind has no schema.
"""

import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

OLDEST = "1.28.0"
CRD_PLURALS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}


def strict(schema):
    """Forbids fields a structural schema does not declare (the API server's strict field validation)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def crd_validator(schema_dir, kind, api_version):
    version = api_version.split("/", 1)[1]
    path = schema_dir / f"{CRD_PLURALS[kind]}.{version}.yaml"
    schema = strict(yaml.safe_load(path.read_text()))
    return jsonschema.Draft7Validator(schema)


def main(argv):
    schema_dir = pathlib.Path(argv[1])
    versions = [OLDEST, kubernetes_validate.latest_version()]
    failures = 0
    for name in argv[2:]:
        for index, doc in enumerate(yaml.safe_load_all(pathlib.Path(name).read_text())):
            if doc is None:
                continue
            kind, api_version = doc.get("kind"), doc.get("apiVersion", "")
            what = f"{name} #{index} {kind}/{doc.get('metadata', {}).get('name')}"
            if api_version.startswith("monitoring.coreos.com/"):
                if kind not in CRD_PLURALS:
                    print(f"NO SCHEMA {what}: no vendored CRD schema for {kind}")
                    return 2
                errors = sorted(crd_validator(schema_dir, kind, api_version).iter_errors(doc), key=str)
                for error in errors:
                    path = ".".join(str(p) for p in error.absolute_path)
                    print(f"FAIL {what} against the {kind} CRD schema: {path}: {error.message}")
                failures += len(errors)
                if not errors:
                    print(f"ok {what} against the {kind} CRD schema")
                continue
            for version in versions:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    print(f"ok {what} against Kubernetes {version}")
                except kubernetes_validate.SchemaNotFoundError as error:
                    print(f"NO SCHEMA {what} for Kubernetes {version}: {error}")
                    return 2
                except kubernetes_validate.ValidationError as error:
                    path = ".".join(str(p) for p in error.path)
                    print(f"FAIL {what} against Kubernetes {version}: {path}: {error.message}")
                    failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
