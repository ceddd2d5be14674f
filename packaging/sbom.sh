#!/bin/sh
# packaging/sbom.sh TRIPLE OUT: a CycloneDX 1.5 JSON SBOM of the crates that
# go into the rebootctl binary for TRIPLE, written to OUT.
#
# cargo-cyclonedx takes its graph from `cargo metadata`, which also lists
# optional dependencies the build does not enable (ureq's cookie store,
# env_logger's regex, url/idna, ...). The SBOM is cut down to the crates
# `cargo tree -e normal --target TRIPLE` resolves, i.e. what is compiled
# into the binary (proc-macros included; build-only dependencies such as
# `cc` are not). With SOURCE_DATE_EPOCH set, cargo-cyclonedx writes that
# time and no random serial number; the checkout path in the bom-refs is
# replaced by /build, so the SBOM is reproducible too.
set -eu

triple=${1:?usage: sbom.sh TRIPLE OUT}
out=${2:?usage: sbom.sh TRIPLE OUT}
cargo=${CARGO:-cargo}
name=sbom-tmp-$$
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$name.json"' EXIT

"$cargo" cyclonedx --format json --spec-version 1.5 --no-build-deps --target "$triple" \
    --override-filename "$name" -q
mv "$name.json" "$tmp/raw.json"
"$cargo" tree --locked -e normal --target "$triple" --prefix none --format '{p}' \
    | awk '{ print $1 " " substr($2, 2) }' | sort -u > "$tmp/shipped"

python3 - "$tmp/raw.json" "$tmp/shipped" "$(pwd)" "$out" <<'PY'
import json, re, sys

raw, shipped_path, root, out = sys.argv[1:]
with open(raw) as f:
    text = f.read()
name = json.loads(text)["metadata"]["component"]["name"]
# bom-refs of path packages carry the checkout directory, and cargo shortens
# "path+file:///x/rebootctl#rebootctl@0.1.0" to "...#0.1.0" when the
# directory has the package's name: both become path+file:///build#NAME@.
text = re.sub(r"file://" + re.escape(root) + r"#(?:" + re.escape(name) + r"@)?",
              "file:///build#" + name + "@", text)
bom = json.loads(text)
shipped = {tuple(line.split()) for line in open(shipped_path) if line.strip()}
kept = [c for c in bom.get("components", []) if (c["name"], c["version"]) in shipped]
refs = {c["bom-ref"] for c in kept} | {bom["metadata"]["component"]["bom-ref"]}
missing = shipped - {(c["name"], c["version"]) for c in kept} - {
    (bom["metadata"]["component"]["name"], bom["metadata"]["component"]["version"])}
if missing:
    sys.exit("sbom: crates in the build but not in the SBOM: %s" % sorted(missing))
bom["components"] = kept
deps = []
for d in bom.get("dependencies", []):
    if d["ref"] in refs:
        d["dependsOn"] = [r for r in d.get("dependsOn", []) if r in refs]
        deps.append(d)
bom["dependencies"] = deps
with open(out, "w") as f:
    json.dump(bom, f, indent=2, sort_keys=False)
    f.write("\n")
print("sbom: %s: %d crates (cargo-cyclonedx listed %d)" % (
    out, len(kept), len(json.loads(text).get("components", []))))
PY
