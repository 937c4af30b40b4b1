#!/usr/bin/env python3
"""An SPDX 2.3 JSON SBOM of the crates compiled into Kask's binaries.

Reads `cargo metadata` (on stdin) for the dependency graph and licenses, and Cargo.lock for
each crate's registry checksum. Only what the binaries link is listed: the crates reachable
from the packages given by name through normal dependencies (not dev- or build-dependencies,
which are not shipped).

Usage: cargo metadata --format-version 1 --locked | release/sbom.py Cargo.lock VERSION PKG...
"""
import datetime
import json
import sys
import tomllib
import uuid


def main():
    lock_path, version, roots = sys.argv[1], sys.argv[2], sys.argv[3:]
    meta = json.load(sys.stdin)
    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)
    checksums = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    by_name = {p["name"]: p["id"] for p in meta["packages"] if p.get("source") is None}
    missing = [r for r in roots if r not in by_name]
    if missing:
        sys.exit(f"sbom.py: no workspace package named {', '.join(missing)}")

    shipped, todo = set(), [by_name[r] for r in roots]
    while todo:
        pid = todo.pop()
        if pid in shipped:
            continue
        shipped.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k.get("kind") is None for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])

    def spdx_id(p):
        return "SPDXRef-Package-" + "".join(
            c if c.isalnum() or c in ".-" else "-" for c in f"{p['name']}-{p['version']}")

    entries = []
    for pid in sorted(shipped, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        entry = {
            "SPDXID": spdx_id(p),
            "name": p["name"],
            "versionInfo": p["version"],
            "downloadLocation": (f"https://crates.io/api/v1/crates/{p['name']}/{p['version']}/download"
                                 if p.get("source", "") and "crates.io" in p["source"] else "NOASSERTION"),
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": p.get("license") or "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "filesAnalyzed": False,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:cargo/{p['name']}@{p['version']}",
            }],
        }
        checksum = checksums.get((p["name"], p["version"]))
        if checksum:
            entry["checksums"] = [{"algorithm": "SHA256", "checksumValue": checksum}]
        entries.append(entry)

    ids = {pid: spdx_id(packages[pid]) for pid in shipped}
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": ids[by_name[r]]} for r in roots]
    for pid in sorted(shipped):
        for dep in nodes[pid]["deps"]:
            if dep["pkg"] in shipped and any(k.get("kind") is None for k in dep["dep_kinds"]):
                relationships.append({"spdxElementId": ids[pid], "relationshipType": "DEPENDS_ON",
                                      "relatedSpdxElement": ids[dep["pkg"]]})

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    json.dump({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"kask-{version}",
        "documentNamespace": f"https://kask.dev/spdx/kask-{version}-{uuid.uuid4()}",
        "creationInfo": {"created": now, "creators": ["Tool: kask release/sbom.py"]},
        "packages": entries,
        "relationships": relationships,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
