#!/usr/bin/env bash
# run.sh [-b BUILD] [-o OUT] [-j JOBS] TARGET|all SECONDS
#
# Runs libFuzzer harnesses for SECONDS each. TARGET is fuzz_http, fuzz_path, fuzz_conf,
# fuzz_policy, fuzz_jwt or all (every one that is built). BUILD is a build directory
# configured with clang and -DGW_FUZZ=ON (default ./build-fuzz; configured and built when
# the fuzzers are missing). OUT (default BUILD/fuzz-out) receives the growing corpus, the
# logs and any crash input. The committed seeds in fuzz/corpus/<target> are read, never
# written. JOBS targets run at once (default 1).
#
# Exit status 0 when no fuzzer found anything, 1 when one did (its input is in
# OUT/artifacts/<target>/ and the summary names it), 2 on usage or build errors.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build-fuzz
out=
jobs=1
while getopts "b:o:j:" opt; do
	case $opt in
	b) build=$OPTARG ;;
	o) out=$OPTARG ;;
	j) jobs=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -ne 2 ] || ! [[ $2 =~ ^[0-9]+$ ]]; then
	echo "usage: $0 [-b BUILD] [-o OUT] [-j JOBS] TARGET|all SECONDS" >&2
	exit 2
fi
target=$1
secs=$2
out=${out:-$build/fuzz-out}
all=(fuzz_http fuzz_path fuzz_conf fuzz_policy fuzz_jwt)

if [ ! -x "$build/fuzz/fuzz_path" ]; then
	echo "== building the fuzzers in $build"
	CC=clang cmake -S "$src" -B "$build" -DGW_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
		cmake --build "$build" -j"$(nproc)" --target fuzzers >/dev/null || exit 2
fi

targets=()
if [ "$target" = all ]; then
	for t in "${all[@]}"; do
		[ -x "$build/fuzz/$t" ] && targets+=("$t")
	done
elif [ -x "$build/fuzz/$target" ]; then
	targets=("$target")
else
	echo "run.sh: $build/fuzz/$target is not built" >&2
	exit 2
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
# The configuration fuzzers load real certificates from here (see fuzz_files.c).
if [ ! -s "$out/pki/client-cas.pem" ]; then
	bash "$src/tests/tools/mkpki.sh" "$out/pki" >/dev/null || exit 2
	cat "$out/pki/ca.crt" "$out/pki/inter.crt" >"$out/pki/client-cas.pem"
fi

# Per-target input size bound and dictionary.
opts_for() {
	case $1 in
	fuzz_http) echo "-max_len=8192 -dict=$src/fuzz/http.dict" ;;
	fuzz_path) echo "-max_len=4096 -dict=$src/fuzz/path.dict" ;;
	fuzz_conf) echo "-max_len=16384 -dict=$src/fuzz/conf.dict" ;;
	fuzz_policy) echo "-max_len=8192 -dict=$src/fuzz/conf.dict" ;;
	fuzz_jwt) echo "-max_len=4096 -dict=$src/fuzz/jwt.dict" ;;
	*) echo "-max_len=4096" ;;
	esac
}

# run_one TARGET: one fuzzer for secs; its log is out/TARGET.log.
run_one() {
	local t=$1 corpus=$out/corpus/$1 art=$out/artifacts/$1 leaks=()
	mkdir -p "$corpus" "$art"
	# The configuration fuzzers leak-check afterwards, once per corpus input: most
	# mutants are libconfig syntax errors, each leaking libconfig's 64 bytes
	# (suppressed, see lsan.supp), and the leak scan after every such run would
	# cost ten times the run itself.
	case $t in
	fuzz_conf | fuzz_policy) leaks=(-detect_leaks=0) ;;
	esac
	# -timeout: one input taking 10 s is a hang worth reporting; -rss_limit_mb bounds
	# a runaway allocation. The first corpus directory receives new inputs. Paths are
	# absolute: the configuration fuzzers change directory at start-up.
	GW_FUZZ_PKI=$out/pki LSAN_OPTIONS=suppressions=$src/fuzz/lsan.supp "$build/fuzz/$t" \
		$(opts_for "$t") "${leaks[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" "$corpus" "$src/fuzz/corpus/$t" \
		>"$out/$t.log" 2>&1
	if [ ${#leaks[@]} -gt 0 ]; then
		echo "== leak pass: every corpus input once, leak detection on" >>"$out/$t.log"
		GW_FUZZ_PKI=$out/pki LSAN_OPTIONS=suppressions=$src/fuzz/lsan.supp "$build/fuzz/$t" \
			$(opts_for "$t") -runs=0 -timeout=10 -artifact_prefix="$art/" "$corpus" \
			"$src/fuzz/corpus/$t" >>"$out/$t.log" 2>&1
	fi
}

pids=()
for t in "${targets[@]}"; do
	echo "== $t for ${secs}s (log $out/$t.log)"
	run_one "$t" &
	pids+=($!)
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		sleep 1
	done
done
for p in "${pids[@]}"; do
	wait "$p"
done

# Summary: executions, coverage, corpus size and findings per target.
rc=0
printf '%-12s %12s %8s %8s %8s  %s\n' target execs cov ft corpus findings
for t in "${targets[@]}"; do
	log=$out/$t.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | head -n1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
	n=$(find "$out/corpus/$t" -type f | wc -l)
	found=$(find "$out/artifacts/$t" -type f | wc -l)
	printf '%-12s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$n" "$found"
	if [ "$found" -gt 0 ] || grep -q -E '^==[0-9]+==ERROR|runtime error:|deadly signal' "$log"; then
		rc=1
		echo "   FINDING in $t:" "$(find "$out/artifacts/$t" -type f | head -n3)"
		grep -m1 -A12 -E '^==[0-9]+==ERROR|runtime error:|deadly signal' "$log" | sed 's/^/   /'
	fi
done
exit $rc
