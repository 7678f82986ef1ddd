#!/usr/bin/env bash
# Prepare a machine without a Docker engine for SAM CLI's own `sam local`: Debian's podman with
# runc, private podman settings, and a locally built stand-in for the Lambda base image
# (no container registry is reachable here). Idempotent: a second run only rewrites the settings
# and keeps the image when its recipe has not changed.
#
#   tools/sam_local/setup.sh            (root, or passwordless sudo for apt-get)
#
# Environment: SAM_LOCAL_HOME (settings, storage; default /var/lib/sklambda-sam-local),
# PYTHON (a Python with pip for the wheel downloads; default .venv/bin/python),
# PYTHON312 (the CPython 3.12 copied into the image; default: pyenv's newest 3.12).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SAM_LOCAL_HOME="${SAM_LOCAL_HOME:-/var/lib/sklambda-sam-local}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
RUNTIME=python3.12
case "$(uname -m)" in
    x86_64) ARCH=x86_64 ;;
    aarch64 | arm64) ARCH=arm64 ;;
    *) echo "setup: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
# SAM 1.170 asks for exactly this tag for a python3.12 zip function (Runtime.get_image_name_tag).
IMAGE="public.ecr.aws/lambda/python:3.12-$ARCH"

say() { echo "[sam-local setup] $*"; }
die() { echo "[sam-local setup] error: $*" >&2; exit 1; }
# A prerequisite this repo cannot install (root, a CPython 3.12): exit 3, reported as SKIPPED.
missing() { echo "[sam-local setup] missing prerequisite: $*" >&2; exit 3; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    missing "needs root or passwordless sudo (apt-get, podman with runc)"
fi

# ------------------------------------------------------------------ packages
# --no-install-recommends keeps crun out (it cannot run containers on these machines'
# hybrid cgroups) and brings no network plugins: containers here only ever use the host network.
missing=()
for tool in podman:podman runc:runc debootstrap:debootstrap; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "$(podman --version), $(runc --version | head -n1)"

# ------------------------------------------------------------------ podman settings
# Private files passed through CONTAINERS_*_CONF, so the machine's own podman setup is untouched.
"${SUDO[@]}" mkdir -p "$SAM_LOCAL_HOME"
write() { "${SUDO[@]}" tee "$1" >/dev/null; }

write "$SAM_LOCAL_HOME/containers.conf" <<'EOF'
[containers]
# runc fails to start a container whose limits exceed the hard ones of this sandbox.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
# Podman 4.3's Docker-compatible API ignores this (fixed in 4.4); the proxy sets host networking
# on every container SAM creates. Kept for containers started with the podman CLI.
netns = "host"

[engine]
runtime = "runc"
# No systemd here: cgroupfs, and events in a file instead of the journal.
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# No registry is reachable: block the public ones so nothing tries a DNS lookup, and never
# expand short names.
{
    echo 'unqualified-search-registries = []'
    echo 'short-name-mode = "disabled"'
    for registry in public.ecr.aws docker.io registry-1.docker.io quay.io ghcr.io gcr.io \
        registry.k8s.io mcr.microsoft.com registry.fedoraproject.org registry.access.redhat.com \
        registry.redhat.io registry.opensuse.org registry.suse.com container-registry.oracle.com; do
        printf '\n[[registry]]\nlocation = "%s"\nblocked = true\n' "$registry"
    done
} | write "$SAM_LOCAL_HOME/registries.conf"

write "$SAM_LOCAL_HOME/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$SAM_LOCAL_HOME/storage"
runroot = "/run/sklambda-sam-local/storage"
EOF

export CONTAINERS_CONF="$SAM_LOCAL_HOME/containers.conf"
export CONTAINERS_REGISTRIES_CONF="$SAM_LOCAL_HOME/registries.conf"
export CONTAINERS_STORAGE_CONF="$SAM_LOCAL_HOME/storage.conf"
PODMAN=("${SUDO[@]}" env CONTAINERS_CONF="$CONTAINERS_CONF"
    CONTAINERS_REGISTRIES_CONF="$CONTAINERS_REGISTRIES_CONF"
    CONTAINERS_STORAGE_CONF="$CONTAINERS_STORAGE_CONF" podman)

# ------------------------------------------------------------------ the stand-in image
[ -x "$PYTHON" ] || die "no Python with pip at $PYTHON (run 'make venv', or set PYTHON)"
if [ -z "${PYTHON312:-}" ]; then
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12 \
        /root/.pyenv/versions/3.12.*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
        [ -x "$candidate" ] && PYTHON312="$candidate"
    done
fi
[ -n "${PYTHON312:-}" ] && [ -x "$PYTHON312" ] ||
    missing "no CPython 3.12 found (set PYTHON312=/path/to/python3.12)"
PY312_PREFIX="$("$PYTHON312" -c 'import sys; print(sys.base_prefix)')"
PY312_VERSION="$("$PYTHON312" -c 'import platform; print(platform.python_version())')"
pin() { "$PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))"; }
# The runtime's own libraries at the versions the project tests with.
RIC_VERSION="$(pin awslambdaric)"
BOTO3_VERSION="$(pin boto3)"

RECIPE="$( { cat "$0"; echo "$ARCH $PY312_VERSION $RIC_VERSION $BOTO3_VERSION"; } | sha256sum | cut -c1-16)"
current="$("${PODMAN[@]}" image inspect --format '{{ index .Labels "sklambda.recipe" }}' "$IMAGE" \
    2>/dev/null || true)"
if [ "$current" = "$RECIPE" ]; then
    say "image $IMAGE is up to date (recipe $RECIPE)"
    exit 0
fi

say "building $IMAGE: Debian minbase + CPython $PY312_VERSION + awslambdaric $RIC_VERSION + boto3 $BOTO3_VERSION"
WORK="$("${SUDO[@]}" mktemp -d "$SAM_LOCAL_HOME/build.XXXXXX")"
trap '"${SUDO[@]}" rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"

# The Debian mirror apt already uses (the only package source reachable besides PyPI and npm).
MIRROR="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
[ -n "$MIRROR" ] || MIRROR="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' \
    /etc/apt/sources.list 2>/dev/null || true)"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SUITE="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
# The shared libraries CPython's extension modules link against (ssl, ctypes, sqlite3, ...).
INCLUDE=ca-certificates,libssl3,libffi8,libsqlite3-0,libexpat1,libncursesw6,libreadline8,libnsl2
say "debootstrap $SUITE from $MIRROR"
started=$SECONDS
"${SUDO[@]}" debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
say "debootstrap took $((SECONDS - started)) s"
"${SUDO[@]}" rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

# CPython under /var/lang as in the Lambda image; its rpath points at the old prefix, which the
# image's LD_LIBRARY_PATH (as in Lambda) makes up for.
"${SUDO[@]}" mkdir -p "$ROOTFS/var/lang" "$ROOTFS/var/runtime" "$ROOTFS/var/task" "$ROOTFS/opt"
"${SUDO[@]}" tar -C "$PY312_PREFIX" \
    --exclude='./lib/python3.12/test' --exclude='./lib/python3.12/idlelib' \
    --exclude='./lib/python3.12/tkinter' --exclude='./lib/python3.12/turtledemo' \
    --exclude='./lib/python3.12/ensurepip' --exclude='./lib/python3.12/site-packages/*' \
    --exclude='./lib/python3.12/config-3.12-*' --exclude='./lib/libpython3.12.a' \
    --exclude='./include' --exclude='./share' -c ./bin ./lib |
    "${SUDO[@]}" tar -C "$ROOTFS/var/lang" -x

"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile \
    --platform "manylinux2014_$(uname -m)" --python-version 3.12 --implementation cp \
    --only-binary=:all: --target "$WORK/runtime" \
    "awslambdaric==$RIC_VERSION" "boto3==$BOTO3_VERSION" 2> >(grep -v "^WARNING: Location" >&2)
"${SUDO[@]}" cp -a "$WORK/runtime/." "$ROOTFS/var/runtime/"

# What the Lambda runtime does for python3.12: the function's code, then the layers, then the
# runtime's own boto3; the RIE starts this with _HANDLER set.
"${SUDO[@]}" tee "$ROOTFS/var/runtime/bootstrap" >/dev/null <<'EOF'
#!/bin/sh
export AWS_EXECUTION_ENV=AWS_Lambda_python3.12
export PYTHONPATH="/var/task:/opt/python/lib/python3.12/site-packages:/opt/python:/var/runtime"
exec /var/lang/bin/python3.12 -m awslambdaric "$_HANDLER"
EOF
"${SUDO[@]}" chmod 0755 "$ROOTFS/var/runtime/bootstrap"
"${SUDO[@]}" chroot "$ROOTFS" /usr/bin/env LD_LIBRARY_PATH=/var/lang/lib \
    PYTHONPATH=/var/runtime /var/lang/bin/python3.12 -c 'import ssl, ctypes, sqlite3, awslambdaric, boto3' ||
    die "the image's Python cannot import its standard modules or awslambdaric/boto3"

say "importing the root file system as $IMAGE"
"${SUDO[@]}" tar -C "$ROOTFS" --numeric-owner -c . | "${PODMAN[@]}" import --quiet \
    --change "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin" \
    --change "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV TZ=:/etc/localtime" \
    --change "ENV LAMBDA_TASK_ROOT=/var/task" \
    --change "ENV LAMBDA_RUNTIME_DIR=/var/runtime" \
    --change "WORKDIR /var/task" \
    --change "ENTRYPOINT [\"/var/runtime/bootstrap\"]" \
    --change "LABEL sklambda.recipe=$RECIPE" \
    - "$IMAGE" >/dev/null
say "image $IMAGE ready (recipe $RECIPE, $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE") bytes)"
