// A CRM endpoint that checks every request with the official Standard Webhooks library (npm
// "standardwebhooks"): the bridge's pushed events and its CRM operation calls must verify.
// Used by tests/events/event_feed_test.cpp.
//
//   node verify_receiver.mjs <whsec_secret> <log_file> <fail_first_n>
//
// Appends "listening <port>" to log_file, then one JSON line per request:
// {path, id, verified, error, status, body}. The first fail_first_n event pushes answer 500.
import http from "node:http";
import fs from "node:fs";
import { Webhook } from "standardwebhooks";

const [secret, logFile, failArg] = process.argv.slice(2);
let failLeft = Number(failArg || 0);
const wh = new Webhook(secret);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    let verified = false, error = null;
    try {
      wh.verify(body, req.headers);
      verified = true;
    } catch (e) {
      error = String(e && e.message);
    }
    let status = verified ? 200 : 401;
    if (verified && req.url === "/events" && failLeft > 0) {
      failLeft -= 1;
      status = 500;
    }
    fs.appendFileSync(logFile, JSON.stringify({ path: req.url, id: req.headers["webhook-id"] || null, verified, error, status, body }) + "\n");
    res.writeHead(status, { "content-type": "application/json" });
    res.end(req.url === "/crm" ? JSON.stringify({ id: "crm_" + Math.random().toString(36).slice(2) }) : "{}");
  });
});
server.listen(0, "127.0.0.1", () => fs.appendFileSync(logFile, `listening ${server.address().port}\n`));
process.on("SIGTERM", () => process.exit(0));
