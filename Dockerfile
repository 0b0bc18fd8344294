# The workers' image: this project installed by the README's set-up (`make setup`), for the
# cloud profile (no shared software) and Snakemake's `container:`. No registry is needed: the
# base is any Debian 12 with python3, python3-venv and make, e.g. one built from Debian's
# packages with debootstrap and `podman import` (.ci/container.sh does that, then builds this).
#
#   podman build --build-arg BASE=localhost/debian-python:bookworm -t efficientdet-workflow .
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}

# A Debian base without python3-venv and make gets them (needs the Debian mirror).
RUN command -v make >/dev/null && python3 -m venv --help >/dev/null 2>&1 \
    || (apt-get update && apt-get install -y --no-install-recommends python3 python3-venv make \
        && rm -rf /var/lib/apt/lists/*)

WORKDIR /opt/efficientdet
# Dependencies first, so that a change of the code alone reuses the installed layer.
COPY pyproject.toml README.md Makefile ./
COPY scripts/efficientdet/__init__.py scripts/efficientdet/
# A CA bundle for pip where the build's egress needs one (.ci/container.sh passes it).
ARG PIP_CERT=
RUN if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi \
    && PIP_NO_CACHE_DIR=1 make setup VENV=/opt/venv PYTHON=python3 EXTRAS=cpu,slurm,s3
COPY scripts/ scripts/
COPY workflow/ workflow/
COPY config/ config/
COPY envs/ envs/
COPY profiles/ profiles/
COPY resources/sample-voc.zip resources/

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
# Jobs run in the working directory Snakemake gives them; the workflow lives here.
CMD ["snakemake", "--snakefile", "/opt/efficientdet/workflow/Snakefile", "--help"]
