#!/bin/sh
# Time callhook's queries on a big database (bench/gen_calls.py makes one).
#
#     bench/query_bench.sh DB [RUNS]
#
# Each query runs RUNS times (default 5) with its output thrown away; the
# table gives the fastest and the median wall time in milliseconds, and
# the target of issue 5: 100 ms for list with one filter, history, show
# and search of a common word, 2 s for stats --by agent (the rest have no
# target and are there to be watched). The values it filters on (an
# agent, a batch, a number, a callSid) are those of recent calls; "busy
# number" is a caller ID of the generator, on some 25,000 calls. The
# page cache is warm after the first run: the median is a warm time.
# CALLHOOK overrides the binary (default build/callhook).

set -eu

db=${1:?usage: bench/query_bench.sh DB [RUNS]}
runs=${2:-5}
ch=${CALLHOOK:-build/callhook}

[ -f "$db" ] || { echo "query_bench: $db: no such file" >&2; exit 1; }

# call_sid,call_time,call_type,agent_id,batch_id,from_number,to_number,...
row=$("$ch" -d "$db" list --limit 1 --not-converted --format csv |
    sed -n 2p)
sid=$(echo "$row" | cut -d, -f1)
agent=$(echo "$row" | cut -d, -f4)
batch=$("$ch" -d "$db" list --limit 1 --since 30d --converted \
    --format csv | sed -n 2p | cut -d, -f5)
number=$(echo "$row" | cut -d, -f7)
busy=$(echo "$row" | cut -d, -f6)
old=$(date -d '300 days ago' +%Y-%m-%d)

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# time_it TARGET_MS LABEL COMMAND... (TARGET_MS 0: none)
time_it() {
	target=$1 label=$2
	shift 2
	times=""
	i=0
	while [ "$i" -lt "$runs" ]; do
		t0=$(now_ms)
		"$@" >/dev/null 2>&1 || { echo "query_bench: failed: $*" >&2
		    exit 1; }
		t1=$(now_ms)
		times="$times $((t1 - t0))"
		i=$((i + 1))
	done
	sorted=$(echo $times | tr ' ' '\n' | sort -n)
	best=$(echo "$sorted" | head -1)
	median=$(echo "$sorted" | sed -n "$(((runs + 1) / 2))p")
	verdict=ok
	[ "$median" -le "$target" ] || verdict=SLOW
	[ "$target" -gt 0 ] || { target=-; verdict=; }
	printf '%-44s %7s %7s %7s  %s\n' "$label" "$best" "$median" \
	    "$target" "$verdict"
}

calls=$("$ch" -d "$db" stats --format csv | sed -n 2p | cut -d, -f2)
echo "database: $db, $calls calls, $(du -h "$db" | cut -f1)"
echo "agent $agent, batch $batch, number $number, callSid $sid"
echo
printf '%-44s %7s %7s %7s\n' "query" "best" "median" "target"
q() {
	time_it 100 "$@"
}
q "list" "$ch" -d "$db" list
q "list --agent A" "$ch" -d "$db" list --agent "$agent"
q "list --batch B" "$ch" -d "$db" list --batch "$batch"
q "list --number N" "$ch" -d "$db" list --number "$number"
q "list --hangup BUSY" "$ch" -d "$db" list --hangup BUSY
q "list --hangup NO_SUCH_REASON" "$ch" -d "$db" list --hangup NO_SUCH_REASON
q "list --converted" "$ch" -d "$db" list --converted
q "list --not-converted" "$ch" -d "$db" list --not-converted
q "list --since 7d" "$ch" -d "$db" list --since 7d
q "list --until $old" "$ch" -d "$db" list --until "$old"
q "list --since $old --until $old" "$ch" -d "$db" list --since "$old" \
    --until "$old"
q "history N" "$ch" -d "$db" history "$number"
time_it 0 "list --number BUSY_NUMBER" "$ch" -d "$db" list --number "$busy"
time_it 0 "history BUSY_NUMBER" "$ch" -d "$db" history "$busy"
q "show SID" "$ch" -d "$db" show "$sid"
q "search callback" "$ch" -d "$db" search callback
q "search interest" "$ch" -d "$db" search interest
time_it 0 "search 'call back' --agent A" "$ch" -d "$db" \
    search '"call back"' --agent "$agent"
time_it 0 "search 'interest*'" "$ch" -d "$db" search 'interest*'
time_it 0 "search 'call*' --limit 0" "$ch" -d "$db" search 'call*' --limit 0
time_it 2000 "stats --by agent" "$ch" -d "$db" stats --by agent
time_it 2000 "stats --by agent --since 30d" "$ch" -d "$db" stats --by agent \
    --since 30d
time_it 0 "stats --by day" "$ch" -d "$db" stats --by day
time_it 0 "stats --by batch" "$ch" -d "$db" stats --by batch
time_it 0 "stats" "$ch" -d "$db" stats
