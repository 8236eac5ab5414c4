#!/usr/bin/env bash
# Build Debian 12's sofia-sip with sipdrain's own patches (tools/sofia-sip/,
# each with a header saying what it fixes), cache the two binary packages
# the project needs per user, and install them when the installed
# libsofia-sip-ua0 is not that build.
#
# Layout: ${SIPDRAIN_CACHE:-~/.cache/sipdrain}/sofia-sip-<version>/
#   libsofia-sip-ua0_<version>_<arch>.deb     the runtime library
#   libsofia-sip-ua-dev_<version>_<arch>.deb  headers, .so, .pc
#   build.log   dpkg-buildpackage's output
#   .complete   marker written last (with the patches' sha256); when present
#               nothing is built and apt is not asked anything
# <version> is Debian's with a local suffix (+sipdrainN), which sorts above
# Debian's so apt does not "upgrade" back to the unpatched library. Change
# a patch's diff => bump LOCAL_SUFFIX (the script refuses a cache built from
# other diffs under the same version).
#
# A build (first run only, a few minutes on 2 cores) adds a deb-src entry if
# apt has none, fetches the pinned source with apt-get source, installs the
# arch-only build dependencies, appends the patches to debian/patches/series,
# adds a changelog entry for the local version and runs dpkg-buildpackage -B
# with DEB_BUILD_OPTIONS="nocheck nodoc parallel=N". -B builds every
# architecture-dependent package of the source (also sofia-sip-bin and the
# glib binding: 6 of its 222 C files, not worth patching debian/rules);
# only the two above are kept.
# Prints the cache dir on stdout; progress goes to stderr.
set -euo pipefail

DEBIAN_VERSION=1.12.11+20110422.1+1e14eea~dfsg-6
LOCAL_SUFFIX=+sipdrain11
VERSION=$DEBIAN_VERSION$LOCAL_SUFFIX
PACKAGES=(libsofia-sip-ua0 libsofia-sip-ua-dev)

here=$(cd "$(dirname "$0")" && pwd)
cache="${SIPDRAIN_CACHE:-$HOME/.cache/sipdrain}"
dest="$cache/sofia-sip-$VERSION"
patches=("$here"/sofia-sip/*.patch)
# The diffs only: a patch's header can be edited without a rebuild (one
# sed per file: given several files, sed reads them as one stream and the
# range would run on into the next patch's header).
patch_sum=$(for p in "${patches[@]}"; do sed -n '/^--- a\//,$p' "$p"; done | sha256sum | cut -d' ' -f1)

installed_version() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
  [[ "$status" == "install ok installed"* ]] && dpkg-query -W -f='${Version}' "$1"
  return 0
}

need_root() {
  if [[ "$(id -u)" != 0 ]]; then
    echo "sofia-sip-build: $1 needs root; run: sudo $0" >&2
    exit 1
  fi
}

# Installs the cached packages unless exactly these are installed.
install_cached() {
  local p todo=()
  for p in "${PACKAGES[@]}"; do
    [[ "$(installed_version "$p")" == "$VERSION" ]] || todo+=("$dest/${p}_${VERSION}_$(dpkg --print-architecture).deb")
  done
  ((${#todo[@]} == 0)) && return 0
  need_root "installing sofia-sip $VERSION"
  echo "sofia-sip-build: installing ${todo[*]##*/}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --allow-downgrades \
    "${todo[@]}" >&2
}

# Fast path: already built; at most a dpkg install of the cached packages.
check_cached() {
  [[ -f "$dest/.complete" ]] || return 1
  if ! grep -q "patches $patch_sum" "$dest/.complete"; then
    echo "sofia-sip-build: $dest was built from other patches; bump LOCAL_SUFFIX in $0" >&2
    exit 1
  fi
}
if check_cached; then
  install_cached
  echo "$dest"
  exit 0
fi
# Not root, and installed already (built by root, or from another user's
# cache): nothing to do either. Root builds the cache (the image copies the
# runtime .deb from it).
if [[ "$(id -u)" != 0 &&
      "$(installed_version libsofia-sip-ua0)" == "$VERSION" &&
      "$(installed_version libsofia-sip-ua-dev)" == "$VERSION" ]]; then
  echo "sofia-sip-build: $VERSION installed (no cache in $cache)" >&2
  echo "$dest"
  exit 0
fi

need_root "building sofia-sip $VERSION"
mkdir -p "$cache"
# Serialise concurrent builds (e.g. two checkouts running deps.sh at once).
exec 9>"$cache/.sofia-sip-$VERSION.lock"
flock 9
if check_cached; then # another process finished while we waited
  install_cached
  echo "$dest"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
start=$SECONDS

# A deb-src entry for the suites apt already uses (a fresh debian:12 has none).
if ! grep -rqsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "sofia-sip-build: adding /etc/apt/sources.list.d/debsrc-sipdrain.sources" >&2
  cat >/etc/apt/sources.list.d/debsrc-sipdrain.sources <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
if ! apt-cache showsrc sofia-sip 2>/dev/null | grep -qxF "Version: $DEBIAN_VERSION"; then
  echo "sofia-sip-build: apt-get update" >&2
  apt-get update >&2
fi
echo "sofia-sip-build: installing the build dependencies of sofia-sip $DEBIAN_VERSION" >&2
tools=()
for p in dpkg-dev xz-utils; do
  [[ -n "$(installed_version "$p")" ]] || tools+=("$p")
done
((${#tools[@]} == 0)) || apt-get install -y --no-install-recommends "${tools[@]}" >&2
apt-get build-dep -y --no-install-recommends --arch-only "sofia-sip=$DEBIAN_VERSION" >&2

work=$(mktemp -d "$cache/.sofia-sip-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
# (As root apt-get warns that the download is unsandboxed: harmless.)
apt-get source -q "sofia-sip=$DEBIAN_VERSION" >&2
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'sofia-sip-*' | head -1)
if [[ -z "$src" || ! -f "$src/debian/changelog" ]]; then
  echo "sofia-sip-build: apt-get source sofia-sip=$DEBIAN_VERSION gave no source tree" >&2
  exit 1
fi

# Our patches go last in the series; dpkg-buildpackage applies them.
for p in "${patches[@]}"; do
  cp "$p" "$src/debian/patches/sipdrain-${p##*/}"
  echo "sipdrain-${p##*/}" >>"$src/debian/patches/series"
done
{
  printf 'sofia-sip (%s) bookworm; urgency=medium\n\n' "$VERSION"
  for p in "${patches[@]}"; do
    printf '  * sipdrain: %s\n' "${p##*/}"
  done
  printf '\n -- sipdrain <sipdrain@localhost>  %s\n\n' "$(date -R)"
  cat "$src/debian/changelog"
} >"$src/debian/changelog.new"
mv "$src/debian/changelog.new" "$src/debian/changelog"

echo "sofia-sip-build: building sofia-sip $VERSION in $src" >&2
build_start=$SECONDS
(cd "$src" && DEB_BUILD_OPTIONS="nocheck nodoc parallel=$(nproc)" \
  dpkg-buildpackage -B -uc -us) >"$work/build.log" 2>&1 || {
  tail -n 50 "$work/build.log" >&2
  echo "sofia-sip-build: dpkg-buildpackage failed" >&2
  exit 1
}
build_s=$((SECONDS - build_start))

rm -rf "$dest"
mkdir -p "$dest"
arch=$(dpkg --print-architecture)
for p in "${PACKAGES[@]}"; do
  cp "$work/${p}_${VERSION}_$arch.deb" "$dest/"
done
cp "$work/build.log" "$dest/"
printf 'sofia-sip %s patches %s built %s in %s s\n' "$VERSION" "$patch_sum" \
  "$(date -u +%FT%TZ)" "$build_s" >"$dest/.complete"
echo "sofia-sip-build: built in $build_s s (whole step $((SECONDS - start)) s)" >&2
install_cached
echo "$dest"
