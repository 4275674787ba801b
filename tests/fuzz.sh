#!/bin/sh
# Build the libFuzzer targets with clang (ASan + UBSan) and run each for
# FUZZ_SECONDS (default 10), seeded from the bodies of tests/corpus/*.http,
# tests/fixtures and config.example.ini. Everything it writes (binaries,
# the growing corpus, crash files, logs) goes under build/fuzz/, never
# into tests/. Exits non-zero when a target crashes, with the input that
# did it left in build/fuzz/ and named in the message.
#
#   FUZZ_SECONDS=60 tests/fuzz.sh      # what make torture runs
set -eu

cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-10}
out=${FUZZ_BUILD:-build/fuzz}
cc=${FUZZ_CC:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
	echo "fuzz.sh: $cc not found (make test-deps installs clang)" >&2
	exit 1
fi

mkdir -p "$out/seeds-event" "$out/seeds-config" "$out/corpus-event" \
    "$out/corpus-config"

flags="-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Wall -Wextra \
-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
cjson="$(pkg-config --cflags --libs libcjson) -lpthread -lm"
# libcrypto: config.c decodes a whsec_ secret to check it.
inih=$(pkg-config --cflags --libs inih libcrypto)
# Word splitting wanted: these are lists of flags.
# shellcheck disable=SC2086
$cc $flags -o "$out/fuzz_event" tests/fuzz_event.c src/event.c $cjson
# shellcheck disable=SC2086
$cc $flags -o "$out/fuzz_config" tests/fuzz_config.c src/config.c \
    src/log.c $inih

# Seeds: each corpus request's body (what follows the blank line), and
# the fixtures; for the config target, the example file and a few
# broken ones.
python3 - "$out/seeds-event" tests/corpus/*.http <<'EOF'
import os, sys
out = sys.argv[1]
for path in sys.argv[2:]:
    raw = open(path, "rb").read()
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in raw:
            raw = raw.split(sep, 1)[1]
            break
    with open(os.path.join(out, os.path.basename(path)), "wb") as f:
        f.write(raw)
EOF
cp tests/fixtures/*.json "$out/seeds-event/"
cp config.example.ini "$out/seeds-config/example.ini"
printf '[http]\nlisten = [::1]:0\nmax_body = 1G\ntimeout = 500ms\n' \
    > "$out/seeds-config/ranges.ini"
printf '[store]\nqueue = 0\nack = maybe\n[nope]\nx = 1\n  indented = 1\n' \
    > "$out/seeds-config/errors.ini"
printf '\357\273\277[log]\nlevel = debug ; comment\n[auth]\nallow = 10.0.0.0/8, ::1/128\n' \
    > "$out/seeds-config/bom.ini"
printf '[http\nlisten\n= x\n' > "$out/seeds-config/syntax.ini"
printf '[auth]\ntoken = abc\000def\n' > "$out/seeds-config/nul.ini"

status=0
run() {
	name=$1 maxlen=$2
	log="$out/$name.log"
	echo "fuzz.sh: $name for ${seconds}s"
	if ! "$out/$name" -max_total_time="$seconds" -max_len="$maxlen" \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$out/$name-" "$out/corpus-${name#fuzz_}" \
	    "$out/seeds-${name#fuzz_}" > "$log" 2>&1; then
		tail -40 "$log" >&2
		echo "fuzz.sh: $name FAILED; the input is in $out/$name-*" >&2
		status=1
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	echo "fuzz.sh: $name: ${execs:-?} executions in ${seconds}s," \
	    "corpus $(find "$out/corpus-${name#fuzz_}" -type f | wc -l) inputs"
}
run fuzz_event 65536
run fuzz_config 8192
exit $status
