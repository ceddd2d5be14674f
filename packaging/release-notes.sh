#!/bin/sh
# packaging/release-notes.sh TAG: Markdown release notes for TAG: the
# commits since the previous tag (all commits when TAG is the first), the
# artefacts and how to verify them. Used by .github/workflows/release.yml.
set -eu

tag=${1:?usage: release-notes.sh TAG}
git rev-parse --verify --quiet "$tag^{commit}" >/dev/null || { echo "release-notes: no such tag or commit: $tag" >&2; exit 1; }
prev=$(git describe --tags --abbrev=0 "$tag^" 2>/dev/null || true)
if [ -n "$prev" ]; then
    range="$prev..$tag"
    since="since $prev"
else
    range=$tag
    since="(first release)"
fi

printf '# rebootctl %s\n\n' "$tag"
printf '## Changes %s\n\n' "$since"
git log --no-merges --reverse --format='- %s (%h)' "$range"
cat <<'MD'

## Artefacts

- `.deb` and `.rpm` packages for amd64 and arm64
- `*.cdx.json`: CycloneDX SBOM of the crates in each binary
- `SHA256SUMS`, signed as `SHA256SUMS.asc`; the `.rpm` files are signed
  (rpm), the `.deb` files carry a debsigs origin signature
- `rebootctl-release-key.asc`: the public key they were signed with

Check them with `packaging/verify-artifacts.sh DIR rebootctl-release-key.asc`;
see "Verifying a release" in README.md.
MD
