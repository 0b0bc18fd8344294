#!/usr/bin/env bash
# The worker image without a registry (Debian 12, as root): a Debian base from Debian's packages
# (debootstrap + `podman import`), the project's Dockerfile on top, then the data stage and one
# training epoch of a tiny run inside the image. Prints the build time and the image size.
#
#   .ci/container.sh [WORKDIR]    (default: a new temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=localhost/efficientdet-base:bookworm
IMAGE=localhost/efficientdet-workflow:latest
WORKDIR=${1:-$(mktemp -d)}

log() { echo "[container ${SECONDS}s] $*"; }

for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || {
    log "installing podman and debootstrap (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      podman debootstrap uidmap >/dev/null
    break
  }
done

if ! podman image exists "$BASE"; then
  rootfs=$(mktemp -d)
  log "debootstrap bookworm into $rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,make,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  tar -C "$rootfs" -c . | podman import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

start=$SECONDS
# The host's network: the build installs from PyPI.
podman build --network=host --build-arg BASE="$BASE" -t "$IMAGE" .
log "image built in $((SECONDS - start)) s, $(podman image inspect "$IMAGE" --format '{{.Size}}') bytes"

# The data stage and one epoch of a tiny run, in the image, on the bundled sample.
mkdir -p "$WORKDIR/config"
cp config/config.yaml "$WORKDIR/config/"
cat >"$WORKDIR/config/tiny.yaml" <<'YAML'
dataset: {name: sample, url: /opt/efficientdet/resources/sample-voc.zip}
model: {name: efficientdet-d0, image_size: 128, hparams: {learning_rate: 0.02, lr_warmup_epoch: 0}}
train: {epochs: 1, batch_size: 2, examples_per_epoch: 4, mode: train}
YAML
start=$SECONDS
podman run --rm --network=none -v "$WORKDIR:/work" -w /work "$IMAGE" \
  snakemake --snakefile /opt/efficientdet/workflow/Snakefile --cores 2 \
  --configfile config/tiny.yaml train
log "data stage and one epoch in the image: $((SECONDS - start)) s; results in $WORKDIR"
