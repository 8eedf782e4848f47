# gridbid — `make run` starts the portal, `make test` runs the whole suite.
# Each target installs what it needs first: a Python venv, npm packages, browser assets,
# and (for tests) Debian's chromium, socat, PostgreSQL, Redis and nginx.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
VENDOR := web/static/vendor
APT_PACKAGES := chromium socat postgresql redis-server nginx
# The AVR firmware build and its simulator (firmware_bridge/firmware/avr/).
APT_PACKAGES += gcc-avr avr-libc simavr libsimavr-dev
# The Cortex-M0 firmware build (firmware_bridge/firmware/arm/): GCC and newlib-nano.
APT_PACKAGES += gcc-arm-none-eabi libnewlib-arm-none-eabi

.PHONY: run test bench deps test-deps system-deps compile lint clean firmware-avr firmware-arm

run: deps
	$(BIN)/gridbid run --demo

test: test-deps
	$(BIN)/ruff check .
	$(BIN)/pytest

deps: $(VENV)/.installed $(VENDOR)/socket.io.min.js $(VENDOR)/chart.umd.min.js $(VENDOR)/ethers.min.js
	@# gzip twins of the static files (the portal sends them to browsers that accept gzip, and
	@# nginx's gzip_static can too); only missing or stale ones are written.
	$(BIN)/python -c 'import sys; from web.compress import main; main(sys.argv[1:])' web/static

test-deps: deps $(VENV)/.installed-test system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# pip's build warnings go to a log, shown only when the install fails.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e . > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed setup.cfg
	$(BIN)/pip install --quiet -e '.[test]' > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENDOR)/socket.io.min.js: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/socket.io-client/dist/socket.io.min.js $(VENDOR)/
	cp node_modules/socket.io-client/dist/socket.io.min.js.map $(VENDOR)/

$(VENDOR)/chart.umd.min.js: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map $(VENDOR)/

# ethers' ES module build: the page imports it to unlock keystores and sign (served locally).
$(VENDOR)/ethers.min.js: node_modules/.installed
	mkdir -p $(VENDOR)
	cp node_modules/ethers/dist/ethers.min.js $(VENDOR)/

# Debian packages the browser, serial and scale-out tests drive; installed only when missing.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do command -v $$p >/dev/null || dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# Benchmarks print their figures, and bench/report.py rewrites docs/BENCHMARKS.md from them
# (bench/report.py's SECTIONS, one after the other: gas, chain, boards, portal, portal_procs,
# settle, ...); never part of `make test`.
bench: test-deps
	$(BIN)/python bench/report.py

# The ATmega1284P firmware (-Werror, prints flash and RAM) and its libsimavr harness (avr-sim).
firmware-avr: system-deps
	$(MAKE) -C firmware_bridge/firmware/avr all harness

# The STM32F030C8 image (board-arm.bin for st-flash, .elf for OpenOCD) and its sizes.
firmware-arm: system-deps
	$(MAKE) -C firmware_bridge/firmware/arm

compile: node_modules/.installed
	node contracts/compile.js

lint: test-deps
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules $(VENDOR) var test-artifacts
	find web/static -name '*.gz' -delete
