#!/usr/bin/env python3
"""Write the bad-request corpus: tests/corpus/NNN-SSS-slug.http.

Each file is one raw HTTP/1.1 request, replayable with
`nc 127.0.0.1 PORT < FILE`. The name carries what the faults suite
(tests/check_faults.c, test_corpus) expects from a daemon running with
`[store] strict = on` and the default max_body (4M):

  SSS      the HTTP status; 000 when the daemon closes the connection
           without an answer (the request never ends or is not HTTP)
  mhd-     the answer comes from libmicrohttpd itself (HTTP syntax it
           refuses before callhookd sees the request): status only, the
           body is its HTML page, not our JSON
  (else)   the body must be {"status":"error"|"success","message":...}

Every request that carries an event uses the callSid cNNN (its own
number), so the test can check that exactly the files named -200- were
stored. The 200 files are requests that look wrong but are valid per
SPEC (see README.md beside this file for why each one is accepted).

Run it from the repository root after changing the list; it rewrites
every file. Big inputs (10 MB strings, 100,000-deep nesting) are made by
the test at run time, not kept here.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = b"/webhook/call-webhook"

FULL = {
    "event": "call_ended",
    "data": {
        "callSid": "SID",
        "name": "outbound",
        "agent": "agent-1",
        "versionId": "v1",
        "from": "911234567890",
        "to": "918765432109",
        "recordingUrl": "https://example.com/r.mp3",
        "call_duration": 120,
        "time": "2025-12-19 16:00:00",
        "transcription": "AGENT: hello\nUSER: call me back",
        "batchId": "batch-1",
        "hangup_reason": "CLIENT_INITIATED",
        "call_metadata": {"lead": "x"},
        "try_count": 0,
        "post_call": {"lead_status": "interested"},
        "post_call_detail": {"lead_status": {"value": "interested",
                                             "comment": "ok"}},
        "functions_called": [{"name": "update_crm", "success": True,
                              "timestamp": "2025-12-19 16:01:00"}],
        "disposition_reason": "callback requested",
        "conversion_status": False,
        "next_call_scheduled": True,
        "call_link": "https://example.com/c/1",
    },
}

cases = []          # (status, slug, raw bytes builder taking the sid)


def add(status, slug, build):
    cases.append((status, slug, build))


def request(body, method=b"POST", path=PATH, ctype=b"application/json",
            headers=b"", version=b"HTTP/1.1", length=True):
    h = method + b" " + path + b" " + version + b"\r\nHost: 127.0.0.1\r\n"
    if version == b"HTTP/1.1":
        h += b"Connection: close\r\n"
    if ctype is not None:
        h += b"Content-Type: " + ctype + b"\r\n"
    h += headers
    if length:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + b"\r\n" + body


def chunked(pieces, final=b"0\r\n\r\n", ext=b"", headers=b""):
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in pieces)
    return request(body + final, headers=b"Transfer-Encoding: chunked\r\n" +
                   headers, length=False)


def minimal(sid):
    return b'{"event":"call_ended","data":{"callSid":"%s"}}' % sid


def full(sid, **changes):
    doc = json.loads(json.dumps(FULL))
    doc["data"]["callSid"] = sid.decode()
    for k, v in changes.items():
        doc["data"][k] = v
    return json.dumps(doc).encode()


def post(body_fn, **kw):
    return lambda sid: request(body_fn(sid), **kw)


# --- the body is not JSON, or not one JSON value -------------------------
def text(t):
    return lambda sid: t.replace(b"SID", sid)


for slug, t in [
    ("truncated-after-brace", b"{"),
    ("truncated-in-key", b'{"event":"call_ended","da'),
    ("truncated-in-string", b'{"event":"call_ended","data":{"callSid":"SI'),
    ("truncated-before-close", b'{"event":"call_ended","data":{"callSid":"SID"}'),
    ("truncated-after-colon", b'{"event":"call_ended","data":'),
    ("trailing-comma", b'{"event":"call_ended","data":{"callSid":"SID"},}'),
    ("single-quotes", b"{'event':'call_ended','data':{'callSid':'SID'}}"),
    ("unquoted-keys", b'{event:"call_ended",data:{callSid:"SID"}}'),
    ("comment", b'{"event":"call_ended",/* x */"data":{"callSid":"SID"}}'),
    ("trailing-garbage", b'{"event":"call_ended","data":{"callSid":"SID"}}x'),
    ("two-objects", b'{"event":"call_ended","data":{"callSid":"SID"}}{}'),
    ("nan", b'{"event":"call_ended","data":{"callSid":"SID","call_duration":NaN}}'),
    ("infinity", b'{"event":"call_ended","data":{"callSid":"SID","call_duration":Infinity}}'),
    ("leading-zero", b'{"event":"call_ended","data":{"callSid":"SID","try_count":01}}'),
    ("hex-number", b'{"event":"call_ended","data":{"callSid":"SID","try_count":0x1}}'),
    ("plus-number", b'{"event":"call_ended","data":{"callSid":"SID","try_count":+1}}'),
    ("unterminated-string", b'{"event":"call_ended","data":{"callSid":"SID}}'),
    ("bad-escape", b'{"event":"call_ended","data":{"callSid":"SID","name":"\\x41"}}'),
    ("short-u-escape", b'{"event":"call_ended","data":{"callSid":"SID","name":"\\u12"}}'),
    ("non-hex-u-escape", b'{"event":"call_ended","data":{"callSid":"SID","name":"\\uZZZZ"}}'),
    ("raw-control-char", b'{"event":"call_ended","data":{"callSid":"SID","name":"a\x01b"}}'),
    # RFC 8259 lets a parser ignore it, but SQLite's JSON functions do
    # not, and payload is stored byte for byte.
    ("byte-order-mark", b'\xef\xbb\xbf{"event":"call_ended","data":{"callSid":"SID"}}'),
    ("form-feed-between-tokens", b'{\x0c"event":"call_ended","data":{"callSid":"SID"}}'),
    ("number-trailing-dot", b'{"event":"call_ended","data":{"callSid":"SID","x":1.}}'),
    ("number-leading-dot", b'{"event":"call_ended","data":{"callSid":"SID","x":-.5}}'),
    ("whitespace-only", b"  \r\n\t "),
    ("bare-word", b"call_ended"),
    ("missing-colon", b'{"event" "call_ended","data":{"callSid":"SID"}}'),
    ("unbalanced-brackets", b'{"event":"call_ended","data":{"callSid":"SID"]}'),
]:
    add(400, slug, post(text(t)))

add(400, "empty-body", post(lambda sid: b""))
add(400, "no-length-no-body", lambda sid: request(b"", length=False))

# --- invalid UTF-8, NUL bytes --------------------------------------------
for slug, bad in [
    ("utf8-ff-byte", b"\xff"),
    ("utf8-overlong-slash", b"\xc0\xaf"),
    ("utf8-surrogate", b"\xed\xa0\x80"),
    ("utf8-truncated-sequence", b"\xe2\x82"),
    ("utf8-above-10ffff", b"\xf4\x90\x80\x80"),
    ("utf8-lone-continuation", b"\x80"),
    ("utf8-f5-lead", b"\xf5\x80\x80\x80"),
]:
    add(400, slug, post(lambda sid, bad=bad: b'{"event":"call_ended","data":'
                        b'{"callSid":"%s","transcription":"a%sb"}}' % (sid, bad)))
add(400, "utf8-invalid-in-key",
    post(lambda sid: b'{"event":"call_ended","data":{"callSid":"%s","k\xfe":1}}' % sid))
add(400, "utf8-invalid-in-callsid",
    post(lambda sid: b'{"event":"call_ended","data":{"callSid":"%s\xc3"}}' % sid))
add(400, "nul-inside-string",
    post(lambda sid: b'{"event":"call_ended","data":{"callSid":"%s","name":"a\x00b"}}' % sid))
add(400, "nul-after-object", post(lambda sid: minimal(sid) + b"\x00"))
add(400, "nul-before-object", post(lambda sid: b"\x00" + minimal(sid)))
add(400, "escaped-nul-strict",
    post(lambda sid: b'{"event":"call_ended","data":{"callSid":"%s","name":"a\\u0000b"}}' % sid))
add(400, "escaped-nul-in-callsid",
    post(lambda sid: b'{"event":"call_ended","data":{"callSid":"%s\\u0000x"}}' % sid))

# --- the envelope -----------------------------------------------------------
for slug, t in [
    ("body-array", b"[]"),
    ("body-string", b'"call_ended"'),
    ("body-number", b"1"),
    ("body-true", b"true"),
    ("body-null", b"null"),
    ("event-missing", b'{"data":{"callSid":"SID"}}'),
    ("event-number", b'{"event":1,"data":{"callSid":"SID"}}'),
    ("event-null", b'{"event":null,"data":{"callSid":"SID"}}'),
    ("data-missing", b'{"event":"call_ended"}'),
    ("data-array", b'{"event":"call_ended","data":[]}'),
    ("data-string", b'{"event":"call_ended","data":"SID"}'),
    ("data-null", b'{"event":"call_ended","data":null}'),
    ("data-number", b'{"event":"call_ended","data":1}'),
    ("callsid-missing", b'{"event":"call_ended","data":{"name":"SID"}}'),
    ("callsid-empty", b'{"event":"call_ended","data":{"callSid":""}}'),
    ("callsid-number", b'{"event":"call_ended","data":{"callSid":7}}'),
    ("callsid-null", b'{"event":"call_ended","data":{"callSid":null}}'),
    ("callsid-true", b'{"event":"call_ended","data":{"callSid":true}}'),
    ("callsid-object", b'{"event":"call_ended","data":{"callSid":{"id":"SID"}}}'),
    ("callsid-array", b'{"event":"call_ended","data":{"callSid":["SID"]}}'),
    ("callsid-wrong-case-key", b'{"event":"call_ended","data":{"callsid":"SID"}}'),
    ("callsid-at-top-level", b'{"event":"call_ended","callSid":"SID","data":{}}'),
]:
    add(400, slug, post(text(t)))
add(400, "callsid-too-long",
    post(lambda sid: b'{"event":"call_ended","data":{"callSid":"%s%s"}}' % (sid, b"x" * 300)))
for slug, t in [
    ("event-call-started", b'{"event":"call_started","data":{"callSid":"SID"}}'),
    ("event-upper-case", b'{"event":"CALL_ENDED","data":{"callSid":"SID"}}'),
    ("event-trailing-space", b'{"event":"call_ended ","data":{"callSid":"SID"}}'),
    ("event-empty", b'{"event":"","data":{"callSid":"SID"}}'),
]:
    add(400, slug, post(text(t)))

# --- a known field of the wrong type (the corpus daemon runs strict) --------
WRONG = [
    ("name", 123), ("name", {"a": 1}),
    ("agent", True), ("agent", [1]),
    ("versionId", 1.5), ("versionId", {}),
    ("from", 911234567890), ("from", ["9112"]),
    ("to", False), ("to", {"n": "9187"}),
    ("recordingUrl", 1), ("recordingUrl", []),
    ("time", 1734624000), ("time", {"t": 1}),
    ("transcription", ["AGENT: hi"]), ("transcription", 0),
    ("batchId", 42), ("batchId", True),
    ("hangup_reason", {}), ("hangup_reason", 3),
    ("disposition_reason", []), ("disposition_reason", 0.5),
    ("call_link", True), ("call_link", 7),
    ("call_duration", "120"), ("call_duration", True), ("call_duration", {}),
    ("call_duration", [120]),
    ("try_count", "1"), ("try_count", 1.5), ("try_count", True),
    ("try_count", [0]),
    ("call_metadata", "x"), ("call_metadata", [1]), ("call_metadata", 5),
    ("post_call", "x"), ("post_call", []), ("post_call", True),
    ("post_call_detail", "x"), ("post_call_detail", [{}]),
    ("functions_called", {}), ("functions_called", "update_crm"),
    ("functions_called", 1),
    ("conversion_status", "true"), ("conversion_status", 1),
    ("conversion_status", "yes"),
    ("next_call_scheduled", 0), ("next_call_scheduled", "false"),
    ("next_call_scheduled", []),
]
used = set()
for field, value in WRONG:
    slug = "strict-%s-%s" % (field.replace("_", "-").lower(),
                             type(value).__name__)
    while slug in used:
        slug += "-2"
    used.add(slug)
    add(400, slug, post(lambda sid, f=field, v=value: full(sid, **{f: v})))
# Numbers JSON can write but a double or an int64 cannot hold.
for slug, t in [
    ("duration-1e999", b'{"event":"call_ended","data":{"callSid":"SID","call_duration":1e999}}'),
    ("duration-minus-1e999", b'{"event":"call_ended","data":{"callSid":"SID","call_duration":-1e999}}'),
    ("try-count-1e999", b'{"event":"call_ended","data":{"callSid":"SID","try_count":1e999}}'),
    ("try-count-2-pow-63", b'{"event":"call_ended","data":{"callSid":"SID","try_count":9223372036854775808}}'),
]:
    add(400, slug, post(text(t)))

# --- valid per SPEC although they look wrong: expected 200, stored ----------
for slug, t in [
    # RFC 8259 allows duplicate names; cJSON and SQLite's json_extract
    # both take the first, so the typed columns agree with the views.
    ("dup-key-event-first-wins", b'{"event":"call_ended","event":"call_started","data":{"callSid":"SID"}}'),
    ("dup-key-callsid-first-wins", b'{"event":"call_ended","data":{"callSid":"SID","callSid":"other"}}'),
    ("dup-key-data-first-wins", b'{"event":"call_ended","data":{"callSid":"SID"},"data":5}'),
    # -0 is a number; it is stored as 0.
    ("minus-zero-duration", b'{"event":"call_ended","data":{"callSid":"SID","call_duration":-0}}'),
    ("minus-zero-try-count", b'{"event":"call_ended","data":{"callSid":"SID","try_count":-0.0}}'),
    # Unknown fields are kept in payload whatever they hold.
    ("unknown-field-1e999", b'{"event":"call_ended","data":{"callSid":"SID","extra":1e999}}'),
    ("null-fields", b'{"event":"call_ended","data":{"callSid":"SID","batchId":null,"name":null,"try_count":null,"conversion_status":null}}'),
    ("utf8-four-byte", b'{"event":"call_ended","data":{"callSid":"SID","transcription":"\xf0\x9f\x93\x9e \xe0\xa4\xa8\xe0\xa4\xae"}}'),
]:
    add(200, slug, post(text(t)))
add(200, "content-type-missing", post(minimal, ctype=None))
add(200, "content-type-charset", post(minimal, ctype=b"application/json; charset=utf-8"))
add(200, "content-type-upper-case", post(minimal, ctype=b"APPLICATION/JSON"))
add(200, "content-type-empty-params", post(minimal, ctype=b"application/json;"))
add(200, "query-string", post(minimal, path=PATH + b"?x=1"))
add(200, "query-string-empty", post(minimal, path=PATH + b"?"))
add(200, "query-string-nul", post(minimal, path=PATH + b"?a=%00&&b"))
# The path is percent-decoded before it is compared (libmicrohttpd).
add(200, "path-percent-encoded-dash", post(minimal, path=b"/webhook/call%2dwebhook"))
add(200, "path-percent-encoded-slash", post(minimal, path=b"/webhook%2fcall-webhook"))
add(200, "http-1-0", post(minimal, version=b"HTTP/1.0"))
add(200, "expect-100-continue", post(minimal, headers=b"Expect: 100-continue\r\n"))
add(200, "chunked-one-chunk", lambda sid: chunked([minimal(sid)]))
add(200, "chunked-byte-chunks", lambda sid: chunked([bytes([c]) for c in minimal(sid)]))
add(200, "chunked-utf8-split", lambda sid: chunked(
    [b'{"event":"call_ended","data":{"callSid":"%s","name":"\xe2' % sid, b'\x82\xac"}}']))
add(200, "chunked-extension", lambda sid: chunked([minimal(sid)], ext=b";a=b"))
add(200, "chunked-trailer", lambda sid: chunked([minimal(sid)], final=b"0\r\nX-T: 1\r\n\r\n"))
# libmicrohttpd is lenient here; the body is what matters.
add(200, "http-no-host-header", lambda sid: request(minimal(sid)).replace(b"Host: 127.0.0.1\r\n", b""))
add(200, "http-bare-lf-lines", lambda sid: request(minimal(sid)).replace(b"\r\n", b"\n"))

# --- chunked bodies and Content-Length that lie -----------------------------
add(400, "chunked-invalid-json", lambda sid: chunked([b'{"event":', b'"call_ended"']))
add(400, "chunked-empty", lambda sid: chunked([]))
add(400, "chunked-and-length", lambda sid: request(
    b"%x\r\n%s\r\n0\r\n\r\n" % (len(minimal(sid)) - 1, minimal(sid)[:-1]),
    headers=b"Transfer-Encoding: chunked\r\n"))
add(400, "mhd-chunked-bad-size", lambda sid: chunked([minimal(sid)]).replace(
    b"\r\n\r\n%x" % len(minimal(sid)), b"\r\n\r\nzz", 1))
add(0, "chunked-no-last-chunk", lambda sid: chunked([minimal(sid)], final=b""))
add(400, "length-shorter-than-body", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)), b"Content-Length: 20"))
add(0, "length-longer-than-body", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)), b"Content-Length: 500"))
add(413, "length-over-max-body", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)), b"Content-Length: 4194305"))
add(413, "length-over-max-body-expect", lambda sid: request(b"", headers=
    b"Expect: 100-continue\r\n").replace(b"Content-Length: 0", b"Content-Length: 99999999"))
add(413, "mhd-length-overflows", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)), b"Content-Length: 99999999999999999999999"))
add(400, "mhd-length-negative", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)), b"Content-Length: -1"))
add(400, "mhd-length-not-a-number", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)), b"Content-Length: abc"))
add(400, "mhd-length-plus-sign", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)), b"Content-Length: +%d" % len(minimal(sid))))
# Two different lengths: RFC 9112 6.3 says this is an error. Today
# libmicrohttpd takes the first; see README.md (expected to fail until
# src/http.c refuses it).
add(400, "length-twice-differing", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)),
    b"Content-Length: %d\r\nContent-Length: 5" % len(minimal(sid))))
add(501, "transfer-encoding-gzip", post(minimal, headers=b"Transfer-Encoding: gzip\r\n"))

# --- Content-Type ------------------------------------------------------------
for slug, ct in [
    ("text-plain", b"text/plain"),
    ("text-json", b"text/json"),
    ("form-urlencoded", b"application/x-www-form-urlencoded"),
    ("multipart", b"multipart/form-data; boundary=x"),
    ("jsonp", b"application/jsonp"),
    ("json-seq", b"application/json-seq"),
    ("json-patch", b"application/json-patch+json"),
    ("empty", b""),
    ("bare-json", b"json"),
    ("list", b"application/json, text/plain"),
    ("octet-stream", b"application/octet-stream"),
]:
    add(415, "content-type-" + slug, post(minimal, ctype=ct))

# --- methods on the webhook path -------------------------------------------
for m in [b"GET", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE",
          b"HEAD", b"post", b"FOO"]:
    add(405, "method-" + m.decode().lower() + ("-lower" if m == b"post" else ""),
        post(minimal, method=m))

# --- other paths -------------------------------------------------------------
for slug, p in [
    ("root", b"/"),
    ("prefix-only", b"/webhook"),
    ("trailing-slash", PATH + b"/"),
    ("double-leading-slash", b"//webhook/call-webhook"),
    ("double-inner-slash", b"/webhook//call-webhook"),
    ("dot-segment", b"/webhook/./call-webhook"),
    ("encoded-dot-segment", b"/webhook/%2e/call-webhook"),
    ("encoded-dot-dot", b"/webhook/%2e%2e/webhook/call-webhook"),
    ("dot-dot", b"/webhook/x/../call-webhook"),
    ("upper-case", b"/WEBHOOK/CALL-WEBHOOK"),
    ("encoded-trailing-slash", PATH + b"%2f"),
    ("encoded-space-suffix", PATH + b"%20"),
    # %00 decodes to a NUL that ended the path early: this one is
    # expected to fail until src/http.c keeps %00 undecoded.
    ("encoded-nul-suffix", PATH + b"%00.json"),
    ("invalid-escape", PATH + b"%ZZ"),
    ("matrix-param", PATH + b";x=1"),
    ("fragment", PATH + b"#x"),
    ("backslashes", b"\\webhook\\call-webhook"),
    ("absolute-form-other", b"http://127.0.0.1/webhook/other"),
    ("asterisk", b"*"),
    ("healthz-slash", b"/healthz/"),
]:
    add(404, "path-" + slug, post(minimal, path=p))
# A server must take the absolute form (RFC 9112, 3.2.2).
add(200, "path-absolute-form", post(minimal, path=b"http://127.0.0.1" + PATH))
add(200, "path-absolute-form-https-upper", post(minimal,
    path=b"HTTPS://example.com:8443" + PATH + b"?token=x"))
add(405, "post-healthz", post(minimal, path=b"/healthz"))
add(405, "post-metrics", post(minimal, path=b"/metrics"))

# --- not HTTP we take --------------------------------------------------------
add(505, "mhd-http-2-0", post(minimal, version=b"HTTP/2.0"))
add(400, "mhd-http-0-9", lambda sid: b"POST " + PATH + b"\r\n\r\n")
add(400, "mhd-header-without-colon", post(minimal, headers=b"BadHeader\r\n"))
add(400, "mhd-length-trailing-space", lambda sid: request(minimal(sid)).replace(
    b"Content-Length: %d" % len(minimal(sid)),
    b"Content-Length:  %d " % len(minimal(sid))))
add(431, "mhd-header-70k", post(minimal, headers=b"X-Big: " + b"a" * 70000 + b"\r\n"))
add(0, "garbage-line", lambda sid: b"HELLO\r\n\r\n")
add(0, "empty-method", lambda sid: b" " + PATH + b" HTTP/1.1\r\nHost: x\r\n\r\n")

# --- cut at \u0000 by cJSON, two callSids would be one call -----------------
add(400, "callsid-nul-escape", post(text(b'{"event":"call_ended","data":'
    b'{"callSid":"SID\\u0000x"}}')))

# --- transfer codings: libmicrohttpd knows chunked only ----------------------
add(501, "transfer-encoding-identity", post(minimal,
    headers=b"Transfer-Encoding: identity\r\n", length=False))
add(501, "transfer-encoding-gzip-chunked", post(minimal,
    headers=b"Transfer-Encoding: gzip, chunked\r\n", length=False))
add(200, "transfer-encoding-chunked-capitals", lambda sid: chunked(
    [minimal(sid)]).replace(b"Transfer-Encoding: chunked",
                            b"Transfer-Encoding: CHUNKED"))

# --- long strings: read by callhookd, not by cJSON (event.c) -------------
LONG = "AGENT: hello \"there\"\\ /\b\f\r\t\n" * 20
add(200, "long-transcription-escapes", post(lambda sid: full(
    sid, transcription=LONG)))
add(400, "long-transcription-bad-escape", post(lambda sid: full(
    sid, transcription=LONG).replace(b"\\b", b"\\x", 1)))

# --- two Transfer-Encoding lines: a proxy may join them and frame otherwise
add(400, "transfer-encoding-twice", lambda sid: chunked(
    [minimal(sid)], headers=b"Transfer-Encoding: gzip\r\n"))


# --- both framings, or a Content-Type that differs on its second line: a
# proxy in front may read the other one (RFC 9112 sections 6.1 and 5.3)
add(400, "chunked-and-length-valid-chunks", lambda sid: chunked(
    [minimal(sid)], headers=b"Content-Length: 5\r\n"))
add(415, "content-type-twice-json-first", post(
    minimal, headers=b"Content-Type: text/plain\r\n"))
add(200, "content-type-twice-same", post(
    minimal, headers=b"Content-Type: application/json\r\n"))

# --- a header line whose name is no token: libmicrohttpd keeps the space
# in the name, or glues a folded line to it, so it is no header here but
# may be one to a proxy in front (RFC 9112 section 5.1)
add(400, "header-space-before-colon", lambda sid: request(
    minimal(sid), length=False).replace(
    b"\r\n\r\n", b"\r\nContent-Length : %d\r\n\r\n" % len(minimal(sid)), 1))
add(400, "header-folded-content-type", post(minimal, ctype=b"text/plain\r\n application/json"))

# --- half a surrogate pair as an escape is JSON (RFC 8259 section 8.2);
# read as U+FFFD, but not in a callSid, where two would be one call
add(200, "json-lone-surrogate-escape", post(text(
    b'{"event":"call_ended","data":{"callSid":"SID","transcription":"Thanks! \\ud83d"}}')))
add(400, "callsid-lone-surrogate-escape", post(text(
    b'{"event":"call_ended","data":{"callSid":"SID\\udc00"}}')))


def main():
    for name in os.listdir(HERE):
        if name.endswith(".http"):
            os.unlink(os.path.join(HERE, name))
    seen = set()
    for i, (status, slug, build) in enumerate(cases, 1):
        assert slug not in seen, slug
        seen.add(slug)
        sid = b"c%03d" % i
        name = "%03d-%03d-%s.http" % (i, status, slug)
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(build(sid))
    bad = sum(1 for c in cases if c[0] != 200)
    print("%d files, %d refused, %d accepted" % (len(cases), bad,
                                                   len(cases) - bad),
          file=sys.stderr)


main()
