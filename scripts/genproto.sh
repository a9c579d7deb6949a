#!/usr/bin/env bash
# Regenerates the Go code of every .proto file in the repository, next to the
# .proto (paths=source_relative). protoc-gen-go and protoc-gen-go-grpc are
# built from the versions pinned by the `tool` lines in go.mod, so the output
# depends only on go.mod and on protoc (protobuf-compiler; 3.21 in CI).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

protoc_bin="${PROTOC:-protoc}"
if ! command -v "$protoc_bin" >/dev/null 2>&1; then
	echo "genproto: protoc not found; install protobuf-compiler (Debian) or set PROTOC" >&2
	exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/" \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc

# Every .proto of the repository: git's view when in a checkout (tracked
# and new files, not ignored ones), otherwise every .proto under the root.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t protos < <(git ls-files --cached --others --exclude-standard -- '*.proto' | sort)
else
	mapfile -t protos < <(find . -name '*.proto' -not -path './.git/*' -not -path './vendor/*' | sed 's|^\./||' | sort)
fi
if [ "${#protos[@]}" -eq 0 ]; then
	echo "genproto: no .proto files found" >&2
	exit 0
fi

for p in "${protos[@]}"; do
	PATH="$tmp:$PATH" "$protoc_bin" \
		--proto_path="$root" \
		--go_out="$root" --go_opt=paths=source_relative \
		--go-grpc_out="$root" --go-grpc_opt=paths=source_relative \
		"$p"
	echo "genproto: $p"
done
