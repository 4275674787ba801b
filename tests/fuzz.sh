#!/bin/sh
# Build the libFuzzer targets with clang (ASan + UBSan) and run each for
# FUZZ_SECONDS (default 10), seeded from the bodies of tests/corpus/*.http,
# tests/fixtures and config.example.ini (the auth target from a few
# requests' headers written here). Everything it writes (binaries,
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

mkdir -p "$out/seeds-event" "$out/seeds-config" "$out/seeds-auth" \
    "$out/corpus-event" "$out/corpus-config" "$out/corpus-auth"

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
# shellcheck disable=SC2086
$cc $flags -o "$out/fuzz_auth" tests/fuzz_auth.c src/auth.c src/config.c \
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
# fuzz_auth.c's input: a flags byte, then its fields, one a line: the
# token, webhook-id, webhook-timestamp, webhook-signature, X-Real-IP, the
# body, and the X-Forwarded-For lines.
auth_seed() {
	file=$1 flags=$2
	shift 2
	{ printf '%b' "$flags"; printf '%s\n' "$@"; } > "$out/seeds-auth/$file"
}
auth_seed headers.txt '\001' s3cret-token msg_2Kx 1700000000 \
    'v1,AAAA v1a,b' 203.0.113.9 '{"event":"call_ended"}' \
    '10.0.0.1, 203.0.113.7' 10.1.1.1
auth_seed previous.txt '\041' "old-token $(printf '\t')" id +1699999700 '  v1,x  v2,y ' \
    ::ffff:198.51.100.7 '' '2001:db8::5 ,, fd00::1'
auth_seed allow.txt '\141' \
    ' 10.0.0.0/8, ::ffff:1.2.3.4/120,2001:db8::/000000000000032' '' \
    ' 1700000301' '' ' 10.2.3.4'
auth_seed real-ip.txt '\060' '' '' '' '' 1.2.3.4

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
run fuzz_auth 4096
exit $status
