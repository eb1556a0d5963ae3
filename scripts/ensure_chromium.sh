#!/bin/sh
# `make test`'s step before pytest: the browser tests (tests/service/browser) drive Debian's
# chromium through Playwright's Python package, never Playwright's own browser download. When
# no chromium is found (CURVEGAN_TEST_CHROMIUM, else `chromium` on PATH) and this runs as root
# where apt-get exists, it installs the package; otherwise it prints one note and goes on, and
# the browser tests skip saying why (or fail, under CURVEGAN_TEST_REQUIRE_SERVICES=1).
# It never fails the build itself: a failed install is a note too.
set -u

if [ -n "${CURVEGAN_TEST_CHROMIUM:-}" ] && [ -x "$CURVEGAN_TEST_CHROMIUM" ]; then
	exit 0
fi
if command -v chromium >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "note: chromium not found and not root with apt-get; browser tests will skip (run: apt-get install chromium)" >&2
	exit 0
fi
echo "installing Debian's chromium for the browser tests (apt-get)" >&2
# The sandbox (chromium-sandbox, its one Recommends) is unused: the tests pass --no-sandbox.
export DEBIAN_FRONTEND=noninteractive
if apt-get -qq update >/dev/null &&
	apt-get -qq install -y --no-install-recommends chromium fonts-liberation >/dev/null; then
	exit 0
fi
echo "note: apt-get could not install chromium; browser tests will skip or fail saying why" >&2
exit 0
