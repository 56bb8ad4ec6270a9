#!/bin/sh
# Builds static vrpc binaries for Linux on amd64, arm64 and arm (v7) into
# dist/ (or the directory given as $1), with the same go build flags as
# deploy/Dockerfile (deploy_test.go checks they agree). Needs only Go.
set -eu
cd "$(dirname "$0")/.."
out=${1:-dist}
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
