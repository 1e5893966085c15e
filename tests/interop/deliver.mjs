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
for (const r of out) console.log(JSON.stringify(r));
