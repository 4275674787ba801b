#!/usr/bin/env python3
"""Make a callhookd database of realistic calls for bench/query_bench.sh.

    bench/gen_calls.py [--rows N] [--seed S] [--callhook PATH] DB

Writes N call_ended bodies (default 1,000,000), one JSON document a line,
into `callhook -d DB import -`, so the file is made by the same checks,
upsert and full-text indexing as the daemon's. The calls are spread over
the last year in time order (as webhooks arrive), among a few hundred
agents, a couple of thousand campaign batches and 200,000 customers, with
transcripts of 80 to 250 words drawn from a skewed vocabulary, so that
some words are in most calls and "callback" in about a fifth of them.
About 1% of the lines are redeliveries. With --jsonl FILE the lines are
written to FILE instead (no database). Python 3 standard library only.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time

AGENTS = 300
BATCHES = 2000
CUSTOMERS = 200_000
CALLER_IDS = 40

HANGUPS = [("CLIENT_INITIATED", 45), ("AGENT_INITIATED", 30),
           ("NO_ANSWER", 12), ("BUSY", 5), ("VOICEMAIL", 4),
           ("NETWORK_ERROR", 2), ("TIMEOUT", 2)]
LEADS = [("interested", 25), ("not_interested", 35), ("callback", 20),
         ("converted", 12), ("dnc", 3), ("wrong_number", 5)]
DISPOSITIONS = {
    "interested": ["Customer showed interest", "Asked for brochure on WhatsApp",
                   "Wants pricing details"],
    "not_interested": ["Not interested", "Already has a policy",
                       "Too expensive for now", "Using a competitor"],
    "callback": ["Customer requested callback", "Busy, call back tomorrow",
                 "Asked to call back in the evening"],
    "converted": ["Payment link sent and paid", "Appointment booked",
                  "Order confirmed"],
    "dnc": ["Asked not to be called again"],
    "wrong_number": ["Wrong number", "Number belongs to someone else"],
}
FUNCTIONS = ["update_crm", "book_appointment", "send_sms",
             "send_whatsapp", "transfer_call", "end_call"]

AGENT_LINES = [
    "Namaste, this is Priya calling from Acme Finance, am I speaking with {name}?",
    "I am calling about the loan offer you enquired about last week.",
    "Is this a good time to talk for two minutes?",
    "We have a special interest rate for existing customers this month.",
    "Can I send you the details on WhatsApp?",
    "Would you like me to schedule a callback at a better time?",
    "The processing fee is waived if you apply before the end of the month.",
    "Thank you for your time, have a nice day.",
    "Could you please confirm your date of birth for verification?",
    "I understand, I will update your preferences in our system.",
]
CUSTOMER_LINES = [
    "Haan, boliye, who is this?",
    "I am busy right now, can you call me back tomorrow?",
    "What is the interest rate and the EMI for five lakh?",
    "I already have a loan with another bank.",
    "Please send me the details on WhatsApp.",
    "Not interested, please do not call again.",
    "Okay, I will think about it and let you know.",
    "Can you call back in the evening after six?",
    "Yes, I want to apply, what documents are needed?",
    "Theek hai, send the link.",
]
FILLER = ("the you to and a is I for of it that this on we your can will "
          "me be with have please okay haan ji sir madam thank yes no "
          "loan rate offer month details time call number bank policy "
          "amount EMI documents apply link WhatsApp tomorrow evening "
          "interest processing fee verification account payment").split()
NAMES = ["Jatin", "Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Sneha",
         "Rahul", "Kavya", "Arjun", "Meera", "Ishaan", "Pooja", "Karan"]


def hexid(rng):
    return "%024x" % rng.getrandbits(96)


def weighted(rng, pairs):
    return rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]


def indian_mobile(rng):
    return "91" + str(rng.choice("6789")) + "%09d" % rng.randrange(10**9)


class World:
    def __init__(self, rng):
        self.agents = [(hexid(rng), [hexid(rng) for _ in range(rng.randint(1, 3))])
                       for _ in range(AGENTS)]
        self.batches = [hexid(rng) for _ in range(BATCHES)]
        self.customers = [indian_mobile(rng) for _ in range(CUSTOMERS)]
        self.caller_ids = [indian_mobile(rng) for _ in range(CALLER_IDS)]
        # Zipf-like weights: the first filler words are the common ones.
        self.filler_w = [1.0 / (i + 1) for i in range(len(FILLER))]


def transcript(rng, w, name, lead):
    words = rng.randint(80, 250)
    out, n = [], 0
    turn = 0
    while n < words:
        if turn % 2 == 0:
            line = rng.choice(AGENT_LINES).format(name=name)
            speaker = "Agent"
        else:
            line = rng.choice(CUSTOMER_LINES)
            speaker = "Customer"
        extra = " ".join(rng.choices(FILLER, w.filler_w, k=rng.randint(3, 12)))
        text = "%s: %s %s" % (speaker, line, extra)
        out.append(text)
        n += len(text.split())
        turn += 1
    if lead == "callback" and "call back" not in " ".join(out):
        out.append("Agent: Sure, I will arrange a callback.")
    return "\n".join(out)


def make_call(rng, w, t):
    agent, versions = rng.choice(w.agents)
    inbound = rng.random() < 0.12
    customer = rng.choice(w.customers)
    caller_id = rng.choice(w.caller_ids)
    hangup = weighted(rng, HANGUPS)
    answered = hangup not in ("NO_ANSWER", "BUSY", "NETWORK_ERROR")
    lead = weighted(rng, LEADS) if answered else "not_reached"
    name = rng.choice(NAMES)
    duration = 0
    if answered:
        duration = min(1800, max(5, int(rng.lognormvariate(4.3, 0.8))))
    functions = []
    if answered:
        for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 3])):
            functions.append({
                "name": rng.choice(FUNCTIONS),
                "success": rng.random() < 0.9,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                           time.gmtime(t + rng.randint(1, 60))),
            })
    sid = hexid(rng)
    converted = lead == "converted"
    disposition = (rng.choice(DISPOSITIONS[lead]) if answered
                   else "Call not answered")
    data = {
        "callSid": sid,
        "name": "inbound" if inbound else "outbound",
        "agent": agent,
        "versionId": rng.choice(versions),
        "from": customer if inbound else caller_id,
        "to": caller_id if inbound else customer,
        "recordingUrl": "https://recordings.example.com/%s.mp3" % sid,
        "call_duration": duration,
        "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)),
        "transcription": transcript(rng, w, name, lead) if answered else "",
        "batchId": None if inbound else rng.choice(w.batches),
        "hangup_reason": hangup,
        "call_metadata": {"name": name, "age": rng.randint(21, 65),
                          "city": rng.choice(["Mumbai", "Delhi", "Pune",
                                              "Jaipur", "Chennai"])},
        "try_count": -1 if inbound else rng.choice([0, 0, 0, 1, 1, 2, 3]),
        "post_call": {"lead_status": lead} if answered else {},
        "post_call_detail": ({"lead_status": {"value": lead,
                                              "comment": disposition}}
                             if answered else {}),
        "functions_called": functions,
        "disposition_reason": disposition,
        "conversion_status": converted,
        "next_call_scheduled": lead == "callback",
        "call_link": "https://callkaro.ai/dashboard/call-history?call_id=%s" % sid,
    }
    return json.dumps({"event": "call_ended", "data": data},
                      ensure_ascii=False, separators=(",", ":"))


def lines(rows, seed):
    rng = random.Random(seed)
    w = World(rng)
    now = time.time()
    times = sorted(rng.uniform(now - 365 * 86400, now) for _ in range(rows))
    recent = []
    for t in times:
        line = make_call(rng, w, t)
        yield line
        recent.append(line)
        if len(recent) > 50:
            recent.pop(0)
        if rng.random() < 0.01:
            yield rng.choice(recent)      # a redelivery


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db", nargs="?", help="the database to create")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--callhook", default=os.environ.get("CALLHOOK",
                                                         "build/callhook"))
    ap.add_argument("--jsonl", help="write the lines here instead")
    a = ap.parse_args()
    if a.jsonl:
        with open(a.jsonl, "w", encoding="utf-8") as f:
            for line in lines(a.rows, a.seed):
                f.write(line + "\n")
        return 0
    if not a.db:
        ap.error("a database (or --jsonl FILE) is needed")
    if os.path.exists(a.db):
        sys.exit("%s exists; remove it first" % a.db)
    start = time.time()
    p = subprocess.Popen([a.callhook, "-d", a.db, "import", "-"],
                         stdin=subprocess.PIPE, encoding="utf-8")
    try:
        for i, line in enumerate(lines(a.rows, a.seed)):
            p.stdin.write(line + "\n")
            if i % 100_000 == 0 and i:
                print("gen_calls: %d lines, %.0f s" % (i, time.time() - start),
                      file=sys.stderr, flush=True)
    except BrokenPipeError:
        pass
    p.stdin.close()
    rc = p.wait()
    print("gen_calls: %s in %.0f s" % (a.db, time.time() - start),
          file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
