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
# In a container without cgroup delegation (CI, this project's machines): crun refuses hybrid
# cgroups and podman's default limits exceed the hard ones, so use runc with cgroupfs and
# limits within the current ones.
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
LIMITS=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)

log() { echo "[container ${SECONDS}s] $*"; }

for tool in podman debootstrap runc; do
  command -v "$tool" >/dev/null || {
    log "installing podman and debootstrap (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      podman debootstrap runc uidmap >/dev/null
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

# The host's network: the build installs from PyPI. Where the host's pip trusts an extra CA
# (an egress proxy that re-signs TLS), the build borrows that CA bundle.
BUILD_OPTIONS=(--network=host --build-arg BASE="$BASE")
if [ -n "${PIP_CERT:-}" ]; then
  BUILD_OPTIONS+=(--volume "$PIP_CERT:/etc/pip-ca.crt:ro" --build-arg PIP_CERT=/etc/pip-ca.crt)
fi
start=$SECONDS
"${PODMAN[@]}" build "${LIMITS[@]}" "${BUILD_OPTIONS[@]}" -t "$IMAGE" .
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
"${PODMAN[@]}" run "${LIMITS[@]}" --rm --network=none -v "$WORKDIR:/work" -w /work "$IMAGE" \
  snakemake train --snakefile /opt/efficientdet/workflow/Snakefile --cores 2 \
  --configfile config/tiny.yaml
log "data stage and one epoch in the image: $((SECONDS - start)) s; results in $WORKDIR"
