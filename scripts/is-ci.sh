#!/usr/bin/env bash
# Exits 0 when the CI variable asks for a run in which nothing may skip, else 1.
#
#   scripts/is-ci.sh && echo "a missing service is a failure"
#
# The one rule, used by the Makefile, scripts/test-mariadb.sh and .ci/run, and
# by the tests' own helper (tests/servers/processes.py:ci_forbids_skips):
# CI set to anything non-empty other than false or 0 (any case) means CI.
# Runners set CI=true, CI=1, CI=TRUE, ...: each must count.
case "$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')" in
    "" | false | 0) exit 1 ;;
    *) exit 0 ;;
esac
