#!/bin/sh
# Builds static vrpc binaries for Linux on amd64, arm64 and arm (v7) into
# dist/ (or the directory given as $1, relative to the current one), with
# the same go build flags as deploy/Dockerfile (deploy_test.go checks they
# agree). Needs only Go.
set -eu
out=${1:-}
if [ -n "$out" ]; then
	mkdir -p "$out"
	out=$(cd "$out" && pwd) # relative to where the script was called from
fi
cd "$(dirname "$0")/.."
out=${out:-dist}
mkdir -p "$out"
for target in linux/amd64 linux/arm64 linux/arm/7; do
	goos=${target%%/*}
	rest=${target#*/}
	goarch=${rest%%/*}
	goarm=
	name=vrpc-$goos-$goarch
	if [ "$goarch" = arm ]; then
		goarm=${rest#*/}
		name=$name-v$goarm
	fi
	echo "building $out/$name"
	GOOS=$goos GOARCH=$goarch GOARM=$goarm CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/$name" ./cmd/vrpc
done
