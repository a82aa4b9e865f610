#!/usr/bin/env bash
# test.sh: the whole test suite, as CI runs it. Installs what is missing, builds, runs
# every unit and integration test with ctest, then builds again with
# -fsanitize=address,undefined and runs the whole suite once more under the sanitizers
# (any report fails the run). Set GW_SKIP_SANITIZE=1 to skip the second pass locally.
# GW_FUZZ_SECONDS=N also runs every fuzzer for N seconds; GW_SOAK_SECONDS sets the length
# of the soak test (tests/integ/t110-soak.sh, default 20).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bash "$src/scripts/install-deps.sh"

bash "$src/scripts/check-deps.sh" "$src"

echo "== build (RelWithDebInfo)"
bash "$src/scripts/build.sh" "$src/build"
echo "== tests"
(cd "$src/build" && ctest --output-on-failure -j2 --timeout 600)

if [ "${GW_SKIP_SANITIZE:-0}" != "1" ]; then
	echo "== build (address,undefined sanitizers)"
	bash "$src/scripts/build.sh" "$src/build-asan" -DGW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	echo "== tests under sanitizers"
	# halt_on_error: the first report fails the test that triggered it.
	export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=66
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	(cd "$src/build-asan" && ctest --output-on-failure -j2 --timeout 900)
fi
# Fuzzers (fuzz/): built with clang, each run for GW_FUZZ_SECONDS when that is set (CI: 60).
if [ -n "${GW_FUZZ_SECONDS:-}" ] && [ "$GW_FUZZ_SECONDS" != 0 ]; then
	echo "== fuzzers (${GW_FUZZ_SECONDS}s each)"
	CC=clang cmake -S "$src" -B "$src/build-fuzz" -DGW_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$src/build-fuzz" -j"$(nproc)" --target fuzzers
	rm -rf "$src/build-fuzz/fuzz-out"
	bash "$src/fuzz/run.sh" -b "$src/build-fuzz" all "$GW_FUZZ_SECONDS"
fi
echo "== all tests passed"
