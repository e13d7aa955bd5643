#!/usr/bin/env python3
"""Validates an SBOM against the official JSON schema of its format.

Usage: validate_sbom.py SCHEMA_DIR (cyclonedx|spdx) FILE

SCHEMA_DIR holds the schemas listed in its README.md: CycloneDX 1.5 (with the SPDX
licence-id and JSF schemas it refers to) and SPDX 2.3. Prints every violation with
its place in the document and exits 1 when there is one; exits 0 when the document is
valid; exits 2 on a usage error. Needs the `jsonschema` package, 4.18 or later (pip
install jsonschema). Formats such as `date-time` and `uri` are checked when jsonschema
has the optional checker for them installed.
"""

import json
import sys
from pathlib import Path
from urllib.parse import urljoin

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

# The schema each format is validated against, by file name in SCHEMA_DIR.
MAIN_SCHEMA = {
    "cyclonedx": "bom-1.5.SNAPSHOT.schema.json",
    "spdx": "spdx-2.3.schema.json",
}


def registry_for(schema_dir: Path, main: dict) -> Registry:
    """Every schema in the directory, under its `$id` and under the address a reference
    from the main schema gives it (a file name resolved against the main `$id`)."""
    base = main.get("$id", "")
    resources = []
    for path in sorted(schema_dir.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT7)
        resources.append((urljoin(base, path.name), resource))
        if "$id" in contents:
            resources.append((contents["$id"], resource))
    return Registry().with_resources(resources)


def main(argv: list) -> int:
    if len(argv) != 4 or argv[2] not in MAIN_SCHEMA:
        print(__doc__, file=sys.stderr)
        return 2
    schema_dir, sbom_format, document_path = Path(argv[1]), argv[2], Path(argv[3])
    schema = json.loads((schema_dir / MAIN_SCHEMA[sbom_format]).read_text(encoding="utf-8"))
    document = json.loads(document_path.read_text(encoding="utf-8"))
    validator = Draft7Validator(
        schema,
        registry=registry_for(schema_dir, schema),
        format_checker=Draft7Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    for error in errors:
        place = "/".join(str(part) for part in error.absolute_path) or "(document)"
        print(f"{document_path}: {place}: {error.message}")
    if errors:
        return 1
    print(f"{document_path}: valid {sbom_format} ({MAIN_SCHEMA[sbom_format]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
