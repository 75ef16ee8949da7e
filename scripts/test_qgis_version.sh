#!/usr/bin/env bash
# make test-qgis QGIS=3.40|3.44 [TARGET=test]: the same `make test` on another QGIS, inside a Debian root whose
# own packages give that QGIS with its own Python, numpy and GDAL (3.40: Debian 13 trixie; 3.44: Debian sid).
# The root is built once with debootstrap under a cache folder outside the clone and reused; the clone and
# ../shared are bind-mounted at the paths they have here, in a mount and pid namespace of the run's own, so no
# mount and no process outlives the run. The venv lives inside the root: the clone's .venv stays the host's.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
version="${1:-}"
target="${2:-test}"

case "$version" in
  3.40) suite=trixie ;;
  3.44) suite=sid ;;
  *) echo "test-qgis: QGIS=${version:-(none)} is not in the matrix. Use QGIS=3.40 (Debian 13 trixie) or QGIS=3.44" \
          "(Debian sid); QGIS 3.22 is plain 'make test' on Debian 12." >&2
     exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "test-qgis: building and entering a Debian root needs root (debootstrap, chroot, mounts):" \
       "run 'sudo make test-qgis QGIS=$version'." >&2
  exit 2
fi
for tool in debootstrap unshare chroot; do
  if ! command -v "$tool" >/dev/null; then
    [ "$tool" = debootstrap ] || { echo "test-qgis: '$tool' is missing (util-linux/coreutils)." >&2; exit 2; }
    echo "test-qgis: installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
      || { echo "test-qgis: could not install debootstrap (apt-get install debootstrap)." >&2; exit 2; }
  fi
done

cache="${PATCHWORK_ROOTS:-/var/cache/patchwork/debian-roots}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$cache/$suite"
shared="$repo/../shared"
[ -d "$shared/data" ] || { echo "test-qgis: $shared/data is missing: the tests read the real rasters there." >&2; exit 2; }
shared_real="$(cd "$shared" && pwd -P)"
venv=/opt/patchwork-venv
mkdir -p "$cache"

# Runs a command in the root with the clone and ../shared mounted where they are here; everything mounted or
# started inside ends with it.
in_root() {
  unshare --mount --pid --fork --propagation private -- bash -euo pipefail -c '
    root=$1 repo=$2 shared=$3 shared_real=$4; shift 4
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    mkdir -p "$root$repo" "$root$shared"
    mount --bind "$repo" "$root$repo"
    mount --bind "$shared_real" "$root$shared"
    mount -o remount,bind,ro "$root$shared"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # Downloads (pip) trust what this machine trusts: behind a TLS-inspecting proxy its CA is only here.
    if [ -f /etc/ssl/certs/ca-certificates.crt ] && [ -f "$root/etc/ssl/certs/ca-certificates.crt" ]; then
      mount --bind -o ro /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    fi
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" \
      PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-}" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c "cd \"$repo\" && $*"
  ' in_root "$root" "$repo" "$(dirname "$repo")/shared" "$shared_real" "$@"
}

# Build once: into a partial folder, renamed only when QGIS is installed, so an interrupted build is never reused.
# The lock is held to the end: runs on one root (and its venv) take turns.
exec 9>"$cache/.$suite.lock"
flock 9
if [ ! -x "$root/usr/bin/qgis_process.bin" ]; then
  partial="$cache/.$suite.partial-$$"
  rm -rf "$cache/.$suite.partial-"*
  echo "test-qgis: building a Debian $suite root in $root (once; later runs reuse it)"
  log="$cache/$suite.build.log"
  debootstrap --variant=minbase "$suite" "$partial" "$mirror" >"$log" 2>&1 \
    || { tail -5 "$log" >&2; echo "test-qgis: debootstrap $suite failed, see $log" >&2; exit 1; }
  # A frozen mirror's Release files outlive their Valid-Until date; the packages are still signed.
  echo 'Acquire::Check-Valid-Until "false";' >"$partial/etc/apt/apt.conf.d/99patchwork"
  root="$partial" in_root "bash scripts/bootstrap.sh packages" >>"$log" 2>&1 \
    || { tail -5 "$log" >&2; echo "test-qgis: installing QGIS in the $suite root failed, see $log" >&2; exit 1; }
  rm -rf "$root"
  mv "$partial" "$root"
fi

qgis_found="$(chroot "$root" dpkg-query -W -f='${Version}' qgis)"
case "$qgis_found" in
  "$version".*) ;;
  *) echo "test-qgis: the Debian $suite root has QGIS $qgis_found, not $version (the suite has moved on): point" \
          "QGIS=$version at the Debian suite that packages it in scripts/test_qgis_version.sh." >&2
     exit 1 ;;
esac
echo "test-qgis: QGIS $qgis_found on Debian $suite: make $target"
in_root "make $target VENV=$venv"
