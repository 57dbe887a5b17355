#!/bin/sh
# Builds sentinel's OCI image without Docker or a registry: `make image`.
#
#   1. sentinel's wheel (python -m build) and wheels of its dependencies, pinned by
#      deploy/image/constraints.txt (pip wheel, from the Python package index);
#   2. a root filesystem from Debian packages (mmdebstrap, this host's apt sources),
#      with a venv at $VENV holding those wheels, a non-root user, sentinel's shipped
#      playbooks and default config, and a CycloneDX SBOM (tools/sbom.py);
#   3. an OCI image layout of that filesystem as one layer (umoci), and a docker-archive
#      tarball of it for `docker load` / `podman load` when skopeo is installed.
#
# Needs root and the Debian packages mmdebstrap, umoci (skopeo optional).
# Output: $OUT (default build/image): oci/ (tag $VERSION), sentinel-image.tar, sbom.cdx.json.
# The recipe (suite, packages, user, paths) is deploy/image/image.env, shared with the
# Dockerfile; tests/ops/test_image.py checks the two stay equivalent.
set -eu

cd "$(dirname "$0")/../.."
REPO=$(pwd)
. deploy/image/image.env
PYTHON=${PYTHON:-python3}
OUT=${OUT:-build/image}
SOURCES=${SOURCES:-/etc/apt/sources.list.d/debian.sources}
VERSION=$("$PYTHON" -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
# reproducible timestamps: the last commit's time (mmdebstrap and tar honour it)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

for tool in mmdebstrap umoci; do
    command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is missing (apt-get install $tool)" >&2; exit 3; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work="$OUT/work"
rm -rf "$work" "$OUT/oci" "$OUT/sentinel-image.tar"
mkdir -p "$work/wheels"

step() { printf '%s build.sh: %s\n' "$(date +%T)" "$*"; }

step "wheels (sentinel $VERSION and its dependencies)"
"$PYTHON" -m build --wheel --no-isolation --outdir "$work/dist" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
"$PYTHON" -m pip wheel -q --wheel-dir "$work/wheels" -c deploy/image/constraints.txt \
    "$work/dist"/triton_sentinel-*.whl

step "root filesystem from Debian $DEBIAN_SUITE packages: $DEBIAN_PACKAGES"
# The hooks run on this host with the new root filesystem as $1.
export WHEELS="$work/wheels" VENV STATE_DIR CONFIG_DIR SENTINEL_UID SENTINEL_GID REPO PYTHON OUT
packages=$(echo "$DEBIAN_PACKAGES" | tr ' ' ',')
mmdebstrap --quiet --variant=essential --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='cp -r "$WHEELS" "$1/tmp/wheels"' \
    --customize-hook='chroot "$1" python3 -m venv "$VENV"' \
    --customize-hook='chroot "$1" "$VENV/bin/pip" install -q --no-index --find-links /tmp/wheels triton-sentinel' \
    --customize-hook='chroot "$1" "$VENV/bin/pip" uninstall -q -y pip' \
    --customize-hook='rm -rf "$1/tmp/wheels"' \
    --customize-hook='echo "sentinel:x:$SENTINEL_UID:$SENTINEL_GID:sentinel:$STATE_DIR:/usr/sbin/nologin" >>"$1/etc/passwd"' \
    --customize-hook='echo "sentinel:x:$SENTINEL_GID:" >>"$1/etc/group"' \
    --customize-hook='mkdir -p "$1$STATE_DIR" "$1$CONFIG_DIR" && chown "$SENTINEL_UID:$SENTINEL_GID" "$1$STATE_DIR"' \
    --customize-hook='cp -r "$1$VENV"/lib/python3*/site-packages/sentinel/defaults/playbooks "$1$CONFIG_DIR/playbooks"' \
    --customize-hook='cp "$REPO/deploy/image/sentinel.yaml" "$1$CONFIG_DIR/sentinel.yaml"' \
    --customize-hook='mkdir -p "$1/usr/share/doc/triton-sentinel" && "$PYTHON" "$REPO/tools/sbom.py" "$1" --venv "$VENV" >"$OUT/sbom.cdx.json" && cp "$OUT/sbom.cdx.json" "$1/usr/share/doc/triton-sentinel/sbom.cdx.json"' \
    "$DEBIAN_SUITE" "$work/rootfs.tar" - <"$SOURCES"

step "OCI image $IMAGE_NAME:$VERSION (umoci)"
umoci init --layout "$OUT/oci"
umoci new --image "$OUT/oci:$VERSION"
umoci raw add-layer --image "$OUT/oci:$VERSION" "$work/rootfs.tar"
umoci config --image "$OUT/oci:$VERSION" \
    --config.user "$SENTINEL_UID:$SENTINEL_GID" \
    --config.workingdir "$STATE_DIR" \
    --config.env "PATH=$VENV/bin:/usr/local/bin:/usr/bin:/bin" \
    --config.env "SENTINEL_CONFIG=$CONFIG_DIR/sentinel.yaml" \
    --config.env "PYTHONDONTWRITEBYTECODE=1" \
    --config.entrypoint /usr/bin/tini --config.entrypoint -- \
    --config.entrypoint "$VENV/bin/sentinel" \
    --config.cmd run --config.cmd --config --config.cmd "$CONFIG_DIR/sentinel.yaml" \
    --config.exposedports 9308/tcp --config.exposedports 9309/tcp \
    --config.volume "$STATE_DIR" \
    --config.label "org.opencontainers.image.title=triton-sentinel" \
    --config.label "org.opencontainers.image.version=$VERSION" \
    --config.label "org.opencontainers.image.licenses=Apache-2.0" \
    --manifest.annotation "org.opencontainers.image.ref.name=$IMAGE_NAME:$VERSION"
umoci gc --layout "$OUT/oci"
if command -v skopeo >/dev/null 2>&1; then
    skopeo copy -q "oci:$OUT/oci:$VERSION" "docker-archive:$OUT/sentinel-image.tar:$IMAGE_NAME:$VERSION"
fi
rm -rf "$work"
step "done: $OUT/oci:$VERSION, $OUT/sbom.cdx.json$(test -f "$OUT/sentinel-image.tar" && echo ", $OUT/sentinel-image.tar")"
