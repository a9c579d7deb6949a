#!/usr/bin/env bash
# Fails when the committed generated protobuf code differs from what
# scripts/genproto.sh produces. Needs protoc (protobuf-compiler) and Go.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/genproto.sh" >/dev/null

mapfile -t generated < <(git ls-files --cached --others --exclude-standard -- '*.pb.go')
if [ "${#generated[@]}" -eq 0 ]; then
	exit 0
fi
untracked="$(git ls-files --others --exclude-standard -- '*.pb.go')"
if [ -n "$untracked" ]; then
	echo "verify_genproto: generated files not committed:" >&2
	echo "$untracked" >&2
	exit 1
fi
if ! git diff --exit-code -- "${generated[@]}"; then
	echo "verify_genproto: generated code is stale; run scripts/genproto.sh and commit the result" >&2
	exit 1
fi
echo "verify_genproto: generated code is up to date"
