"""The story a CRM team runs from Python, against fathom-sim: connect with an API key, sync, a
signed webhook mapped by the default Lua into CRM records our callbacks stored, a
reconnect_required event, and the durable event feed read by cursor across a reopen."""
import threading
import time
import urllib.parse

import pytest

import fathom_bridge
from fathom_bridge import Bridge


def eventually(cond, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_errors_carry_the_code_name_and_message(tmp_path):
    with pytest.raises(fathom_bridge.ConfigError) as info:
        Bridge({"tokens": {"key": "x"}, "sycn": {}, "store": {"path": str(tmp_path / "b.db")}})
    assert info.value.code == 14 and info.value.name == "config"
    assert "sycn" in info.value.message
    assert isinstance(info.value, fathom_bridge.Error)
    assert fathom_bridge.code_name(11) == "reconnect_required"
    assert fathom_bridge.version() == "0.1.0"


def test_the_story_against_fathom_sim(host):
    sim, crm, endpoint, config = host
    events = []
    events_lock = threading.Lock()

    def on_event(event):
        with events_lock:
            events.append(event)

    def types():
        with events_lock:
            return [e["type"] for e in events]

    with Bridge(config) as bridge:
        endpoint.bridge = bridge
        bridge.on_event(on_event)
        for op in crm.OPERATIONS:
            bridge.register_crm_operation(op, crm.handler(op))

        # 1. Connect with an API key; a wrong one is refused with the code's exception.
        with pytest.raises(fathom_bridge.UnauthenticatedError):
            bridge.connect_api_key("acme", "u-alice", "fk_not_a_key")
        alice = bridge.connect_api_key("acme", "u-alice", sim.api_key("alice@example.com"))
        assert alice > 0
        assert "connected" in types()

        # 2. Backfill: the default mapping calls our Python CRM operations on library threads.
        job = bridge.sync("acme", "u-alice", alice, mode="backfill")
        assert job["status"] == "succeeded"
        assert job["meetings_new"] > 0 and job["meetings_mapped"] == job["meetings_new"]
        activities = crm.count("log_activity")
        assert 0 < activities <= job["meetings_mapped"]  # internal-only meetings log none
        assert crm.count("upsert_company") > 0
        with pytest.raises(fathom_bridge.NotFoundError):
            bridge.sync("globex", "u-alice", alice)  # another tenant cannot use it

        # 2b. The same without waiting: the job at once, its progress by id until it ends.
        started = bridge.sync_start("acme", "u-alice", alice)
        assert started["status"] in ("running", "succeeded") and "progress" in started
        assert eventually(lambda: bridge.sync_job("acme", "u-alice", started["id"])["status"] != "running")
        done = bridge.sync_job("acme", "u-alice", started["id"])
        assert done["status"] == "succeeded" and done["progress"]["covered"] == 1.0
        with pytest.raises(fathom_bridge.FailedPreconditionError):
            bridge.sync_cancel("acme", "u-alice", started["id"])  # it has ended
        with pytest.raises(fathom_bridge.NotFoundError):
            bridge.sync_job("globex", "u-alice", started["id"])

        # 3. OAuth connect for bob registers a Fathom webhook at our endpoint.
        #    The callback names the CRM user signed in where it arrived: bob's link in eve's session
        #    is refused.
        url = bridge.connect_start("acme", "u-bob", popup=False)
        location = sim.authorize_as(url, "bob@example.com")
        foreign = bridge.connect_callback(urllib.parse.urlsplit(location).query, "acme", "u-eve")
        assert not foreign["ok"] and foreign["error"] == "state_foreign", foreign
        with pytest.raises(fathom_bridge.InvalidArgumentError):  # no user signed in: fails closed
            bridge.connect_callback(urllib.parse.urlsplit(location).query, "acme", None)
        url = bridge.connect_start("acme", "u-bob", popup=False)
        location = sim.authorize_as(url, "bob@example.com")
        outcome = bridge.connect_callback(urllib.parse.urlsplit(location).query, "acme", "u-bob")
        assert outcome["ok"], outcome
        bob = outcome["integration_id"]
        hooks = sim.admin("GET", "/_sim/webhooks")
        hooks = hooks["webhooks"] if isinstance(hooks, dict) else hooks
        # One per connection: alice's API-key connection registers through the API too.
        assert len(hooks) == 2
        assert all(h["url"].startswith(config["webhooks"]["public_base_url"] + "/webhooks/") for h in hooks)

        # 4. A meeting bob recorded completes: the signed webhook reaches our endpoint, the bridge
        #    verifies it and the default Lua maps it into one more activity in our CRM.
        rec = sim.admin("POST", "/_sim/meetings", {"count": 1, "recorded_by": "bob@example.com"})["recording_ids"][0]
        sim.admin("POST", f"/_sim/meetings/{rec}/complete")
        assert eventually(lambda: crm.count("log_activity") == activities + 1)
        assert eventually(lambda: any(e["recording_id"] == rec for e in bridge.webhook_events(status="done")))
        with crm.lock:
            assert any(str(rec) in str(a) for a in crm.records["log_activity"])
            # The webhook was mapped on a library worker thread, not on this one.
            assert any(t != threading.get_ident() for t in crm.threads)

        # 5. Bob revokes access at Fathom: the next sync fails with reconnect_required, as an
        #    exception and as an event.
        sim.admin("POST", "/_sim/grants/revoke", {"user": "bob@example.com"})
        sim.admin("POST", "/_sim/tokens/expire", {"user": "bob@example.com"})
        try:
            job = bridge.sync("acme", "u-bob", bob)
            assert job["status"] != "succeeded"
        except fathom_bridge.Error as e:
            assert e.name in ("reconnect_required", "unauthenticated")
        assert eventually(lambda: "reconnect_required" in types())
        health = {h["integration_id"]: h["status"] for h in bridge.token_health("acme")}
        assert health[bob] == "reconnect_required" and health[alice] == "valid"

        # 6. The durable feed holds the same events with the same ids, oldest first.
        with events_lock:
            seen = {e["id"]: e["type"] for e in events}
        feed = list(bridge.events(follow=False))
        assert [e["id"] for e in feed] == sorted(e["id"] for e in feed)
        assert {e["id"]: e["type"] for e in feed if e["id"] in seen} == seen
        cursor = feed[-1]["id"]

    # 7. Reopened (a restart): nothing renumbered, and the iterator resumes after the cursor.
    with Bridge(config) as bridge:
        again = list(bridge.events(follow=False))
        assert [(e["id"], e["type"]) for e in again[:len(feed)]] == [(e["id"], e["type"]) for e in feed]
        newer = list(bridge.events(after=cursor, follow=False))
        assert all(e["id"] > cursor for e in newer)
        assert [e["type"] for e in newer] == ["script_loaded"]  # this open's script load, nothing older


def test_crm_errors_reach_the_script_and_blocking_calls_release_the_gil(host):
    sim, crm, endpoint, config = host
    calls = []

    def failing(args, call):
        calls.append(call.operation)
        raise fathom_bridge.UnavailableError("CRM is down for maintenance")

    with Bridge(config) as bridge:
        for op in crm.OPERATIONS:
            bridge.register_crm_operation(op, crm.handler(op))
        bridge.register_crm_operation("log_activity", failing)
        alice = bridge.connect_api_key("acme", "u-alice", sim.api_key("alice@example.com"))
        # A Python thread keeps running while the main thread is inside a blocking call.
        ticks = []
        stop = threading.Event()
        t = threading.Thread(target=lambda: [ticks.append(1) or time.sleep(0.001) for _ in iter(stop.is_set, True)])
        t.start()
        job = bridge.sync("acme", "u-alice", alice, mode="backfill")
        stop.set()
        t.join()
        assert calls, "the failing handler was called"
        assert job["map_failures"] > 0
        assert len(ticks) > 0
        # The long poll blocks without holding the GIL either, and returns empty when nothing came.
        last = bridge.read_events(0, 1000)["next"]
        page = bridge.read_events(last, 10, wait=0.2)
        assert page == {"events": [], "next": last}
    with pytest.raises(fathom_bridge.MisuseError):
        bridge.sync("acme", "u-alice", alice)
