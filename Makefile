# Patchwork: the commands the README documents. Each installs what it needs first (scripts/bootstrap.sh).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The repository is the plugin folder; a `patchwork` link to it makes `import patchwork.core` work
# and lets QGIS find it through QGIS_PLUGINPATH.
PKGROOT := $(CURDIR)/.build/pkgroot
SCENE ?=
DEMO_OUT ?= $(CURDIR)/demo-output
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)

export PYTHONPATH := $(PKGROOT)
export QGIS_PLUGINPATH := $(PKGROOT)
export QT_QPA_PLATFORM := offscreen

QGIS ?=
TARGET ?= test

.PHONY: bootstrap demo test test-qgis bench lint package workflow-model screenshots clean

bootstrap:
	@VENV=$(VENV) bash scripts/bootstrap.sh
	@mkdir -p $(PKGROOT) && ln -sfn $(CURDIR) $(PKGROOT)/patchwork

demo: bootstrap
	$(PY) scripts/demo.py --out $(DEMO_OUT) $(if $(SCENE),--scene $(SCENE))

test: bootstrap
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests

# The same target on another QGIS (3.40, 3.44), in a cached Debian root with that QGIS's own Python, numpy, GDAL.
test-qgis:
	bash scripts/test_qgis_version.sh "$(QGIS)" "$(TARGET)"

bench: bootstrap
	@VENV=$(VENV) bash scripts/bootstrap.sh bench
	$(PY) scripts/bench.py

lint: bootstrap
	$(VENV)/bin/ruff check .

# A real QGIS window (under Xvfb when there is no display) drives the panel on a 1920x1080 and a 1366x768 screen;
# PNGs go to docs/ and docs/1366x768/.
screenshots: bootstrap
	PATCHWORK_SCREEN=1920x1080 bash scripts/screenshots.sh docs .build/screenshots.json
	PATCHWORK_SCREEN=1366x768 bash scripts/screenshots.sh docs/1366x768 .build/screenshots-1366x768.json

# Regenerates the shipped modeler model (sample → augment → train → classify) from its script.
workflow-model: bootstrap
	$(PY) scripts/build_workflow_model.py

# The zip QGIS's "Install from ZIP" and the plugin repository take: patchwork/ inside, no tests or dev files.
package: bootstrap
	$(PY) scripts/package.py dist

clean:
	rm -rf .build dist demo-output .pytest_cache
