#!/usr/bin/env bash
# Runs `bazel test //...` offline with the venv's interpreter; arguments are more Bazel flags
# (CI: `--test_tag_filters=build_check`).
#
# Bazel 4 (Debian's bazel-bootstrap) fetches rules_cc, rules_java and remote_coverage_tools from
# the network before analysing any target; tools/bazel holds small local stand-ins that re-export
# the native rules. Overrides need absolute paths (Bazel 4 does not expand %workspace% there).
# One test at a time: each trains supernets on both cores, and two at once only double the times.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
cd "$root"
exec bazel test \
  --override_repository=rules_cc="$root/tools/bazel/rules_cc" \
  --override_repository=rules_java="$root/tools/bazel/rules_java" \
  --override_repository=remote_coverage_tools="$root/tools/bazel/remote_coverage_tools" \
  --local_test_jobs=1 \
  --test_env=PATH="$venv/bin:/usr/bin:/bin" \
  --test_env=ITNAS_SHARED_DIR="${ITNAS_SHARED_DIR:-$(dirname "$root")/shared}" \
  --test_env=ITNAS_REQUIRE_SHARED_DATA="${ITNAS_REQUIRE_SHARED_DATA:-0}" \
  --test_env=ITNAS_REQUIRE_PEER="${ITNAS_REQUIRE_PEER:-0}" \
  "$@" //...
