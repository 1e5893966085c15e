// Delivers webhooks the way a third-party sender does: signed by the official Standard Webhooks
// library (npm "standardwebhooks", the reference implementation Svix and Fathom follow), posted
// with Node's own HTTP client (fetch/undici, keep-alive). Used by tests/webhooks/interop_test.cpp.
//
//   node deliver.mjs <url> <whsec_secret> <count>
//
// Prints one JSON line per delivery: {case, id, status, result, reason, body}.
import { Webhook } from "standardwebhooks";

const [url, secret, countArg] = process.argv.slice(2);
const count = Number(countArg || 20);
const wh = new Webhook(secret);

function meeting(recordingId, transcriptLines = 3) {
  const transcript = [];
  for (let i = 0; i < transcriptLines; i++) {
    transcript.push({
      speaker: { display_name: i % 2 ? "Bob Buyer" : "Alice Seller", matched_calendar_invitee_email: null },
      text: `Line ${i}: "quoted", unicode \u00e9\u4e2d\u{1F600}, and a backslash \\ in it.`,
      timestamp: `00:${String(Math.floor(i / 60) % 60).padStart(2, "0")}:${String(i % 60).padStart(2, "0")}`,
    });
  }
  return JSON.stringify({
    title: "Interop call", meeting_title: null, recording_id: recordingId,
    url: `https://fathom.video/calls/${recordingId}`, share_url: "https://fathom.video/share/x",
    created_at: new Date().toISOString(), scheduled_start_time: null,
    recorded_by: { name: "Alice", email: "alice@example.com", email_domain: "example.com", team: "Sales" },
    calendar_invitees: [], transcript, default_summary: null, action_items: [], crm_matches: null,
  });
}

async function post(kind, id, body, headers, init = {}) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body, ...init });
  const reason = await res.text();
  return { case: kind, id, status: res.status, result: res.headers.get("webhook-result"), reason,
           body: typeof body === "string" ? body : undefined };
}

function signed(id, body, when = new Date()) {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(when.getTime() / 1000)),
    "webhook-signature": wh.sign(id, when, body),
  };
}

const out = [];
const run = Date.now();
for (let i = 0; i < count; i++) {
  const id = `msg_interop_${run}_${i}`;
  const body = meeting(900000 + i);
  out.push(await post("keepalive", id, body, signed(id, body)));
}
{  // svix-* header names, as Svix also sends them
  const id = `msg_interop_${run}_svix`;
  const body = meeting(900100);
  const h = signed(id, body);
  out.push(await post("svix", id, body, { "svix-id": h["webhook-id"], "svix-timestamp": h["webhook-timestamp"], "svix-signature": h["webhook-signature"] }));
}
{  // a long transcript (about 1 MB)
  const id = `msg_interop_${run}_large`;
  const body = meeting(900200, 9000);
  out.push(await post("large", id, body, signed(id, body)));
}
{  // a chunked body (a stream: Node sends Transfer-Encoding: chunked)
  const id = `msg_interop_${run}_chunked`;
  const body = meeting(900300, 200);
  const bytes = new TextEncoder().encode(body);
  const stream = new ReadableStream({
    start(controller) {
      for (let off = 0; off < bytes.length; off += 1000) controller.enqueue(bytes.slice(off, off + 1000));
      controller.close();
    },
  });
  const r = await post("chunked", id, stream, signed(id, body), { duplex: "half" });
  r.body = body;
  out.push(r);
}
{  // the same delivery again: acknowledged, not stored twice
  const id = `msg_interop_${run}_0`;
  const body = out[0].body;
  out.push(await post("repeat", id, body, signed(id, body)));
}
{  // tampered after signing
  const id = `msg_interop_${run}_tampered`;
  const body = meeting(900400);
  out.push(await post("tampered", id, body.replace("Interop call", "Interop cal1"), signed(id, body)));
}
{  // signed six minutes ago: outside the 5-minute tolerance
  const id = `msg_interop_${run}_stale`;
  const body = meeting(900500);
  out.push(await post("stale", id, body, signed(id, body, new Date(Date.now() - 360_000))));
}

// A strict Standard Webhooks peer, over node:http so header case and body bytes are exactly as
// written. Each line carries what the receiver must answer (expect) and, when a row is stored,
// the stored bytes in base64 (stored_b64).
import http from "node:http";
import crypto from "node:crypto";
const other = new Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");  // a secret the receiver does not have
function raw(kind, headers, body, expect, stored = false) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST",
                               headers: { "Content-Type": "application/json", "Content-Length": body.length, ...headers } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ case: kind, id: String(headers["webhook-id"] ?? headers["Webhook-Id"] ?? "").slice(0, 60),
                                      status: res.statusCode, result: res.headers["webhook-result"] ?? null,
                                      reason: Buffer.concat(chunks).toString(), expect,
                                      stored_b64: stored ? body.toString("base64") : undefined }));
      });
    req.on("error", reject);
    req.end(body);
  });
}
const now = () => Math.floor(Date.now() / 1000);
function sig(id, ts, body) {  // the v1 signature of raw bytes, as the spec defines it
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  return crypto.createHmac("sha256", key).update(Buffer.concat([Buffer.from(`${id}.${ts}.`), body])).digest("base64");
}
const peer = [];
{  // several signatures: an unknown version, a wrong v1, one from a secret we do not have, the good one
  const id = `msg_peer_${run}_multi`, body = Buffer.from(meeting(910001)), t = now();
  const theirs = other.sign(id, new Date(t * 1000), body.toString());
  peer.push(raw("peer_multi", { "webhook-id": id, "webhook-timestamp": String(t),
    "webhook-signature": `v1a,${"A".repeat(86)}== v1,${"B".repeat(43)}= ${theirs} v1,${sig(id, t, body)}` },
    body, { status: 200, result: "accepted" }, true));
}
{  // the right HMAC under an unknown version only: not a v1 signature
  const id = `msg_peer_${run}_v1a`, body = Buffer.from(meeting(910002)), t = now();
  peer.push(raw("peer_v1a_only", { "webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": `v1a,${sig(id, t, body)}` },
    body, { status: 401, reason: "bad signature" }));
}
{  // header names in other cases
  const id = `msg_peer_${run}_case`, body = Buffer.from(meeting(910003)), t = now();
  peer.push(raw("peer_header_case", { "Webhook-Id": id, "WEBHOOK-TIMESTAMP": String(t), "Webhook-Signature": `v1,${sig(id, t, body)}` },
    body, { status: 200, result: "accepted" }, true));
}
for (const [kind, ts, expect] of [
  ["peer_future_within", String(now() + 240), { status: 200, result: "accepted" }],
  ["peer_future_beyond", String(now() + 360), { status: 401, reason: "future timestamp" }],
  ["peer_past_beyond", String(now() - 360), { status: 401, reason: "stale timestamp" }],
  ["peer_milliseconds", String(Date.now()), { status: 401, reason: "future timestamp" }],
  ["peer_not_a_number", "1e9", { status: 400, reason: "malformed timestamp" }],
  ["peer_negative", "-1", { status: 400, reason: "malformed timestamp" }],
  ["peer_overflowing", "99999999999999999999999", { status: 400, reason: "malformed timestamp" }],
]) {
  const id = `msg_peer_${run}_${kind}`, body = Buffer.from(meeting(910004));
  peer.push(raw(kind, { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": `v1,${sig(id, ts, body)}` },
    body, expect, expect.status === 200));
}
{  // a zero-length body and one that is not UTF-8: verified, so kept (as dead letters)
  for (const [kind, body] of [["peer_empty_body", Buffer.alloc(0)], ["peer_latin1_body", Buffer.from('{"recording_id":7,"title":"Caf\xe9"}', "latin1")]]) {
    const id = `msg_peer_${run}_${kind}`, t = now();
    peer.push(raw(kind, { "webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": `v1,${sig(id, t, body)}` },
      body, { status: 200, result: "accepted as unprocessable" }, true));
  }
}
{  // an id longer than any sane bound
  const id = `msg_${"x".repeat(2000)}`, body = Buffer.from(meeting(910005)), t = now();
  peer.push(raw("peer_long_id", { "webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": `v1,${sig(id, t, body)}` },
    body, { status: 400, reason: "malformed header webhook-id" }));
}
for (const r of await Promise.all(peer)) out.push(r);
{  // a webhook-id already accepted, now with another body: the id is the idempotency key, so it
   // is acknowledged as a duplicate and the first body stays (the spec's "processed once")
  const id = `msg_peer_${run}_multi`, body = Buffer.from(meeting(910099)), t = now();
  out.push(await raw("peer_same_id_other_body", { "webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": `v1,${sig(id, t, body)}` },
    body, { status: 200, result: "duplicate" }));
}
for (const r of out) console.log(JSON.stringify(r));
