#!/bin/sh
# callhookd under valgrind --leak-check=full: VALGRIND_REQUESTS (default
# 10,000) requests over 8 kept-alive connections, in ack = commit mode
# (every answer waits for a commit, so tickets and held connections are
# exercised), mixing new events, redeliveries, revisions and refused
# requests; then SIGTERM. Fails unless every answer is the expected one,
# the daemon exits 0, every event is in the database, and valgrind finds
# no error and no leak. Traffic goes to 127.0.0.1 only.
set -eu

cd "$(dirname "$0")/.."
bin=${CALLHOOKD:-build/callhookd}
requests=${VALGRIND_REQUESTS:-10000}
dir=$(mktemp -d /tmp/callhookd-valgrind-XXXXXX)
vpid=

cleanup() {
	if [ -n "$vpid" ]; then
		kill -KILL "$vpid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

if ! command -v valgrind >/dev/null 2>&1; then
	echo "valgrind.sh: valgrind not found (make test-deps installs it)" >&2
	exit 1
fi

# max_body is small so that a 413 costs nothing to send.
printf '[http]\nmax_body = 64K\n[store]\nqueue = 1000\n' > "$dir/callhookd.ini"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
    --log-file="$dir/valgrind.log" \
    "$bin" -c "$dir/callhookd.ini" --listen 127.0.0.1:0 \
    --database "$dir/calls.db" > "$dir/log" 2>&1 &
vpid=$!

port=
for _ in $(seq 600); do
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
	    "$dir/log" | head -1)
	[ -n "$port" ] && break
	kill -0 "$vpid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$port" ]; then
	echo "valgrind.sh: the daemon did not start" >&2
	cat "$dir/log" "$dir/valgrind.log" >&2
	exit 1
fi

start=$(date +%s)
python3 - "$port" "$requests" "$dir/calls.db" tests/fixtures/call_ended.json <<'EOF'
import http.client, json, sqlite3, sys, threading, time

port, total, db, fixture = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
seed = open(fixture, "rb").read()
SID = b"2303fa770b666a64ab1694c1e"
THREADS = 8
deadline = time.monotonic() + 900
lock = threading.Lock()
problems, stored = [], set()

def body(sid, variant=b""):
    return seed.replace(SID, sid.encode()).replace(
        b"CLIENT_INITIATED", b"CLIENT_INITIATED" + variant)

def request(i):
    """One of a repeating mix: what to send and the status to expect."""
    k = i % 20
    sid = "vg-%d" % i
    if k < 12:
        return "POST", "/webhook/call-webhook", body(sid), 200, sid
    if k == 12:   # a redelivery of the last new event
        return "POST", "/webhook/call-webhook", body("vg-%d" % (i - 1)), 200, None
    if k == 13:   # a revision: same callSid, another body
        return "POST", "/webhook/call-webhook", body("vg-%d" % (i - 2), b"x"), 200, None
    if k == 14:
        return "POST", "/webhook/call-webhook", b'{"event":"call_ended","data":{', 400, None
    if k == 15:
        return "POST", "/webhook/call-webhook", b'{"event":"call_started","data":{"callSid":"x"}}', 400, None
    if k == 16:
        return "POST", "/webhook/call-webhook", b"x" * (65 * 1024), 413, None
    if k == 17:
        return "GET", "/webhook/call-webhook", None, 405, None
    if k == 18:
        return "GET", "/healthz", None, 200, None
    return "GET", "/metrics", None, 200, None

def worker(t):
    conn = None
    for i in range(t, total, THREADS):
        if time.monotonic() > deadline:
            with lock:
                problems.append("out of time")
            return
        method, path, data, want, sid = request(i)
        for attempt in range(3):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                headers = {"Content-Type": "application/json"} if data is not None else {}
                conn.request(method, path, body=data, headers=headers)
                r = conn.getresponse()
                payload = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (OSError, http.client.HTTPException) as e:
                if conn is not None:
                    conn.close()
                conn = None
                err = e
        else:
            with lock:
                problems.append("%s %s: %r" % (method, path, err))
            continue
        with lock:
            if r.status != want:
                problems.append("%s %s: %d, want %d: %r" % (method, path, r.status, want, payload[:100]))
            elif sid is not None:
                stored.add(sid)
            if path != "/metrics" and method != "HEAD":
                try:
                    json.loads(payload)
                except ValueError:
                    problems.append("%s %s: not JSON: %r" % (method, path, payload[:100]))
    if conn is not None:
        conn.close()

threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if problems:
    print("valgrind.sh: %d unexpected answers, first: %s" % (len(problems), problems[0]), file=sys.stderr)
    sys.exit(1)
# ack = commit: every 200 is in the file already.
con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
have = {r[0] for r in con.execute("SELECT call_sid FROM calls")}
missing = stored - have
if missing:
    print("valgrind.sh: %d events answered 200 are missing, e.g. %s" % (len(missing), sorted(missing)[0]), file=sys.stderr)
    sys.exit(1)
print("valgrind.sh: %d requests answered as expected, %d events stored" % (total, len(stored)))
EOF
elapsed=$(($(date +%s) - start))

kill -TERM "$vpid"
rc=0
wait "$vpid" || rc=$?
vpid=
if [ "$rc" -ne 0 ] || [ -s "$dir/valgrind.log" ]; then
	echo "valgrind.sh: exit status $rc; valgrind says:" >&2
	cat "$dir/valgrind.log" >&2
	tail -20 "$dir/log" >&2
	exit 1
fi
grep -q 'info: stopped' "$dir/log" || {
	echo "valgrind.sh: no clean stop in the log" >&2
	tail -20 "$dir/log" >&2
	exit 1
}
echo "valgrind.sh: no error, no leak (${elapsed}s of requests, then a clean stop)"
