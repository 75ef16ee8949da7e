#!/usr/bin/env bash
# Starts a real QGIS window (under Xvfb when there is no display), lets scripts/qgis_gui_session.py
# drive the Patchwork panel on a real raster, and saves screenshots.
#   scripts/screenshots.sh OUT_DIR RESULT_JSON [SCENE]
# PATCHWORK_SCREEN=WIDTHxHEIGHT (default 1920x1080) is the screen QGIS's window fills; the window shots are of the
# screen, so they show what a user of that screen sees (a window grown past it is cut off, as on the screen).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "$1")"; result="$(realpath -m "$2")"
scene="${3:-$here/../shared/data/s2_bgrn_10m.tif}"
work="$(mktemp -d)"
trap 'rm -rf "$work"; [ -n "${xvfb:-}" ] && kill "$xvfb" 2>/dev/null || true' EXIT
if [ -z "${DISPLAY:-}" ] || [ "${PATCHWORK_OWN_XVFB:-0}" = 1 ]; then
  display=":$((90 + RANDOM % 9))"
  Xvfb "$display" -screen 0 "${PATCHWORK_SCREEN:-1920x1080}x24" -nolisten tcp >/dev/null 2>&1 &
  xvfb=$!
  export DISPLAY="$display"
  sleep 1
fi
mkdir -p "$out" "$work/profile"
unset QT_QPA_PLATFORM QGIS_OPTS QGIS_OPTIONS_PATH
# The packages of the venv that runs the tests (PATCHWORK_PYTHON), else the clone's: inside a Debian root for
# another QGIS, the clone's .venv is the host's (another Python) and the root has its own venv.
python="${PATCHWORK_PYTHON:-$here/.venv/bin/python}"
venv_site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
PATCHWORK_SCREEN="${PATCHWORK_SCREEN:-1920x1080}" PATCHWORK_SHOTS="$out" PATCHWORK_RESULT="$result" PATCHWORK_SCENE="$(realpath "$scene")" PATCHWORK_WORK="$work" \
QGIS_PLUGINPATH="$here/.build/pkgroot" PYTHONPATH="$venv_site" GDAL_PAM_ENABLED=NO \
  timeout 180 qgis.bin --nologo --noversioncheck --noplugins --profiles-path "$work/profile" \
  --code "$here/scripts/qgis_gui_session.py" >"$work/qgis.log" 2>&1 || status=$?
grep -v "TIFFReadDirectory\|Warped VRT\|XDG_RUNTIME\|setapi" "$work/qgis.log" > "${result%.json}.log" || true
[ "${status:-0}" = 0 ] || { echo "QGIS exited with ${status}; log: ${result%.json}.log"; tail -20 "${result%.json}.log"; exit 1; }
cat "$result"
