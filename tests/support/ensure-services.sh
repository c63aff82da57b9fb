#!/bin/sh
# Installs, from Debian's packages, what the test session starts when it is missing:
# PostgreSQL's server binaries, a Java runtime and Maven for the Apache Kafka broker, and
# Chromium, which renders the replay report headless (tests/overheard/test_report.py).
# Does nothing (and calls no apt) when all of them are there.
#
# The tests start their own PostgreSQL cluster; one that the package creates and starts
# is not used. Without root nothing is installed: the PostgreSQL tests then skip (unless
# OVERHEARD_TEST_DATABASE_URL is set), Kafka tests fall back to the tansu broker and the
# report's browser test skips.
set -eu

missing=""
set -- /usr/lib/postgresql/*/bin/initdb
[ -x "$1" ] || missing="$missing postgresql"
command -v java >/dev/null 2>&1 || missing="$missing default-jre-headless"
command -v mvn >/dev/null 2>&1 || missing="$missing maven"
[ -x /usr/bin/chromium ] || missing="$missing chromium"

[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-services: not installed:$missing (installing needs root)." >&2
    echo "  Without PostgreSQL, its tests skip unless OVERHEARD_TEST_DATABASE_URL is set;" >&2
    echo "  without java (or mvn, until the Kafka jars are cached) Kafka tests use tansu;" >&2
    echo "  without chromium the report's browser test skips." >&2
    exit 0
fi

echo "ensure-services: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get install -y -qq --no-install-recommends $missing >/dev/null
