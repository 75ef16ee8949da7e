#!/usr/bin/env bash
# Installs what Patchwork's demo and tests need, and nothing when it is all there.
# - Debian packages: QGIS with PyQGIS, GDAL, Xvfb (root or sudo); Debian 12 gives QGIS 3.22.
# - A venv on /usr/bin/python3 with the system site packages (PyQGIS lives there),
#   pip packages pinned to the numpy that Debian's GDAL/QGIS bindings were built against.
# `bootstrap.sh packages` installs the Debian packages only (scripts/test_qgis_version.sh builds its roots so);
# `bootstrap.sh bench` also installs what `make bench` compares with (requirements-bench.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="qgis python3-qgis qgis-providers python3-gdal gdal-bin xvfb python3-venv make zip git"
VENV=${VENV:-.venv}

missing=""
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "bootstrap: installing Debian packages:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
[ "${1:-}" != packages ] || exit 0

# Pip must never replace the system numpy: osgeo.gdal_array is compiled against it.
stamp="$VENV/.patchwork-deps"
constraints="$VENV/constraints.txt"
want="$(cat requirements-dev.txt requirements.txt | sha1sum | cut -c1-12)"
if ! [ -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: preparing $VENV"
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$VENV"
  numpy_version="$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')"
  echo "numpy==$numpy_version" > "$constraints"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" \
    -r requirements.txt -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# PyTorch is optional (segmentation networks only). Its CPU build for Python 3.11 (QGIS 3.22's) comes from this
# machine's wheel folder or PyTorch's CPU index (PyPI's Linux torch is a CUDA build of several GB); for other Pythons
# there is none here, and the network tests skip (the refusal message is tested there).
torch_stamp="$VENV/.patchwork-torch"
if [ ! -f "$torch_stamp" ]; then
  if "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "bootstrap: installing PyTorch's CPU build"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" "torch==2.13.0+cpu" \
      --extra-index-url https://download.pytorch.org/whl/cpu \
      || echo "bootstrap: PyTorch's CPU build could not be installed; the network tests will skip"
  else
    echo "bootstrap: no PyTorch CPU build for this Python; the network tests will skip"
  fi
  touch "$torch_stamp"
fi

[ "${1:-}" = bench ] || exit 0
# albumentations 2 declares numpy>=1.24.4 and runs on Debian 12's 1.24.2: its packages install without their
# declared dependencies (the `--no-deps` lines), which are listed and installed pinned to the system numpy.
bench_stamp="$VENV/.patchwork-bench-deps"
bench_want="$(sha1sum requirements-bench.txt | cut -c1-12)"
if [ "$(cat "$bench_stamp" 2>/dev/null)" != "$bench_want" ]; then
  echo "bootstrap: installing the benchmark's references (requirements-bench.txt)"
  grep -v '^ *#' requirements-bench.txt | grep -v -- ' --no-deps' > "$VENV/bench-deps.txt"
  grep -v '^ *#' requirements-bench.txt | grep -- ' --no-deps' | sed 's/ *--no-deps.*//' > "$VENV/bench-nodeps.txt"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" -r "$VENV/bench-deps.txt"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$VENV/bench-nodeps.txt"
  echo "$bench_want" > "$bench_stamp"
fi
