#!/usr/bin/env python3
"""Crash/restart test of `facelens serve`: kill -9 under load, restart, check the books.

    scripts/crash-test.py [--mode sqlite|replicated|both] [--cycles N] [--clients 6]
                          [--json OUT] [--keep]

Uses $FACELENS_BIN (else target/debug/facelens) and the UTKFace crops of $FACELENS_EVALDATA
(default ../shared/evaldata). Standard library only.

sqlite (the default store): a fresh data dir; the CLI creates the load key (total quota
100000) and a separate verification key; `serve` starts with token retention on. Each cycle:
--clients threads send valid images with the load key, each request recorded (complete answer
and its error_code, token_ids of successes; or "refused" = could not connect, never reached a
server; or "broken" = sent and no complete answer); after a few seconds the server gets SIGKILL
while requests are in flight (how many is recorded); it is restarted on the same data dir; then
the store is read with `facelens usage` / `facelens keys show` and checked.

replicated: a private PostgreSQL cluster (initdb/pg_ctl from $PG_BIN or
/usr/lib/postgresql/*/bin; its own port; its unix socket in the temp dir; run as the
`postgres` user when this runs as root) and two `serve` replicas on it, with per-IP rate
limiting through Redis ($FACELENS_CRASH_REDIS_URL, default redis://127.0.0.1:6379/13, a
database index of its own; "none" = no Redis) at a rate far above the load, so that path is
exercised without refusing. Load is spread over both replicas. Each cycle: SIGKILL one replica
(alternating), restart it; then SIGKILL the private postmaster, keep it down --pg-down seconds
(default 6 s, 45 s and 75 s in turn: shorter, longer and much longer than the store's 30 s
pool-acquire timeout) while load continues, with probe requests sent to each replica every
3 s during the outage (the steady clients may all be stuck waiting; what every request
overlapping the outage was answered, and how slowly, is recorded), restart it and wait until
both replicas are ready again. The machine's own PostgreSQL (5432) is never touched.

Checks (cumulative over the cycles; "broken" = requests with no complete answer, the only ones
whose outcome the clients cannot know):
  restart       the server (replica / PostgreSQL) restarts on the same data and answers /readyz
  in-flight     each kill happened with requests in flight (else the cycle tested nothing)
  success-kept  usage rows with code 0 >= successes the clients saw (no success lost)
  no-double     usage rows with code 0 <= successes seen + broken (nothing counted twice)
  codes-kept    for every other code: seen <= usage rows <= seen + broken (busy 200217 and
                internal 10014: 0 <= usage rows <= seen + broken; a busy answer before the body is
                read involves no key, a store outage cannot be recorded in the store)
  quota-bounds  the key's quota counter (total_used): successes + no-face seen <= total_used
                <= that + broken (no refused / failed answer counted, none lost)
  quota=usage   total_used == usage rows of the codes that count (0, 200216): the quota left
                (total_quota - total_used) agrees with the usage report. SQLite: read right
                after the restart (a server on SQLite gives back at start what its previous run
                left reserved); replicated: read once the replicas' reservation TTL (set to
                --reservation-ttl, purge every --purge-interval s) has passed
  tokens        every token_id the clients received resolves after the restarts
                (image_type=3 with the verification key answers 0 with the same token_id)
  no-stray      no request failed (refused / broken / timed out) outside a kill window, no HTTP
                5xx other than 503 + 200217, every body is the contract's envelope
  timeouts      every request that reached a server ended within 60 s

Exit status: 0 all checks pass, 1 a check failed, 2 setup failed.
"""

import argparse
import base64
import glob
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST_TIMEOUT = 60.0
COUNTING = (0, 200216)
KEEP_ENV = {"FACELENS_BACKEND", "FACELENS_THREADS", "FACELENS_LOG"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def facelens_bin():
    b = os.environ.get("FACELENS_BIN") or os.path.join(REPO, "target", "debug", "facelens")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise SystemExit(f"crash-test: no facelens binary at {b}: build it or set FACELENS_BIN")
    return b


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_") or k in KEEP_ENV}
    env.update(extra or {})
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""


def http_get(host, port, path, timeout=5):
    try:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException):
        return None, b""


class Cli:
    """`facelens keys|usage` against one store (--data-dir or --database-url)."""

    def __init__(self, binary, store_args, env):
        self.binary, self.store_args, self.env = binary, store_args, env

    def run(self, sub, args):
        p = subprocess.run([self.binary, sub] + self.store_args + ["--json"] + args,
                           capture_output=True, text=True, env=self.env, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"facelens {sub} {' '.join(args)}: exit {p.returncode}: "
                               f"{p.stderr.strip()}")
        return json.loads(p.stdout)

    def create_key(self, name, total_quota=None):
        args = ["create", "--name", name]
        if total_quota is not None:
            args += ["--total-quota", str(total_quota)]
        v = self.run("keys", args)
        return v["id"], v["key"]

    def key(self, key_id):
        return self.run("keys", ["show", str(key_id)])

    def usage(self, key_id):
        by = {}
        for row in self.run("usage", ["--key", str(key_id), "--days", "2"]):
            by[row["code"]] = by.get(row["code"], 0) + row["count"]
        return by


class Server:
    def __init__(self, name, binary, args, env, log_path):
        self.name, self.binary, self.args, self.env, self.log_path = name, binary, args, env, log_path
        self.proc = None
        self.host, self.port = "127.0.0.1", None

    def start(self, timeout=300):
        with open(self.log_path, "ab") as lf:
            lf.write(f"\n==== start {time.strftime('%H:%M:%S')} ====\n".encode())
            start_offset = lf.tell()
            self.proc = subprocess.Popen([self.binary, "serve", "--listen", "127.0.0.1:0"] + self.args,
                                         stdout=lf, stderr=subprocess.STDOUT, env=self.env)
        t0 = time.time()
        self.port = None
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) while starting:\n"
                                   + tail(self.log_path))
            if self.port is None:
                with open(self.log_path, "rb") as f:
                    f.seek(start_offset)
                    m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", f.read())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None and http_get(self.host, self.port, "/readyz")[0] == 200:
                return time.time() - t0
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n" + tail(self.log_path))

    def ready(self):
        return self.port is not None and http_get(self.host, self.port, "/readyz")[0] == 200

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None


# ---------------------------------------------------------------------------------------------
# Load


class Load:
    """Client threads sending valid images with one key to the current targets."""

    def __init__(self, images, key, clients, seed):
        self.images, self.key, self.clients = images, key, clients
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.targets = {}  # name -> (host, port) or None while down
        self.records = []
        self.in_flight = {}  # id -> record
        self.stop = threading.Event()
        self.threads = []
        self.next_id = 0

    def set_target(self, name, host_port):
        with self.lock:
            self.targets[name] = host_port

    def start(self):
        for i in range(self.clients):
            t = threading.Thread(target=self.loop, args=(self.rng.getrandbits(32),), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT + 10)
        return sum(t.is_alive() for t in self.threads)

    def in_flight_to(self, name=None):
        with self.lock:
            return sum(1 for r in self.in_flight.values() if name is None or r["target"] == name)

    def successes(self, name=None):
        with self.lock:
            return sum(1 for r in self.records
                       if r.get("code") == 0 and (name is None or r["target"] == name))

    def loop(self, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            if not self.one(rng):
                time.sleep(0.1)

    def one(self, rng, only=None, kind="load"):
        """Send one request (to `only`, or to a random target that is up) and record it.
        False if no target is up."""
        with self.lock:
            # Like a load balancer: only the targets that are up (a killed one is taken out of
            # the list at its kill and put back once it is ready again).
            names = [only] if only else sorted(n for n, hp in self.targets.items() if hp)
            names = [n for n in names if self.targets.get(n)]
            if not names:
                return False
            name = rng.choice(names)
            hp = self.targets[name]
            rid = self.next_id
            self.next_id += 1
        _, b64 = rng.choice(self.images)
        body = urllib.parse.urlencode({"key": self.key, "image": b64, "image_type": "1",
                                       "face_num": "1"}).encode()
        rec = {"id": rid, "target": name, "kind": kind, "t0": time.monotonic(), "t1": None,
               "outcome": None, "code": None, "status": None, "tokens": []}
        conn = http.client.HTTPConnection(hp[0], hp[1], timeout=REQUEST_TIMEOUT)
        try:
            conn.connect()
        except OSError as e:
            rec.update(outcome="refused", t1=time.monotonic(), error=repr(e))
            self.add(rec)
            time.sleep(0.2)
            return True
        with self.lock:
            self.in_flight[rid] = rec
        try:
            conn.request("POST", "/faceDetect/index", body=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            resp = conn.getresponse()
            data = resp.read()
            rec["status"] = resp.status
            rec["outcome"] = "answered"
            try:
                v = json.loads(data)
                if not (isinstance(v, dict) and isinstance(v.get("reason"), str)
                        and isinstance(v.get("error_code"), int) and "result" in v):
                    raise ValueError("not the envelope")
                rec["code"] = v["error_code"]
                if rec["code"] == 0:
                    rec["tokens"] = [f["token_id"] for f in v["result"]["face_list"]]
            except (ValueError, KeyError, TypeError) as e:
                rec["outcome"] = "bad_body"
                rec["error"] = f"{e}: {data[:100]!r}"
        except socket.timeout as e:
            rec.update(outcome="timeout", error=repr(e))
        except (OSError, http.client.HTTPException) as e:
            rec.update(outcome="broken", error=repr(e))
        finally:
            conn.close()
            rec["t1"] = time.monotonic()
            with self.lock:
                self.in_flight.pop(rid, None)
        self.add(rec)
        return True

    def probe_while(self, up, every=3.0):
        """Until the event `up` is set: every `every` seconds
        send one request to each target that is up, each on its own thread (the steady clients
        may all be stuck in requests that wait for the store; probes show what a request that
        arrives during an outage gets). Returns the threads (join them later)."""
        threads = []

        def run():
            rng = random.Random(len(threads))
            while not up.wait(every):
                for n in sorted(self.targets):
                    t = threading.Thread(target=self.one, args=(rng, n, "probe"), daemon=True)
                    t.start()
                    threads.append(t)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        return threads

    def add(self, rec):
        with self.lock:
            self.records.append(rec)


def verify_tokens(targets, key, tokens, threads=4):
    """Resolve every token (image_type=3) through the targets in turn. -> list of failures."""
    todo = list(tokens)
    failures = []
    lock = threading.Lock()

    def worker(i):
        while True:
            with lock:
                if not todo:
                    return
                tok = todo.pop()
                n = len(todo)
            host, port = targets[n % len(targets)]
            body = urllib.parse.urlencode({"key": key, "image": tok, "image_type": "3"}).encode()
            try:
                c = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
                c.request("POST", "/faceDetect/index", body=body,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
                v = json.loads(c.getresponse().read())
                c.close()
                got = [f["token_id"] for f in (v.get("result") or {}).get("face_list", [])]
                if v.get("error_code") != 0 or got != [tok]:
                    with lock:
                        failures.append((tok, v.get("error_code")))
            except (OSError, http.client.HTTPException, ValueError) as e:
                with lock:
                    failures.append((tok, repr(e)))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return failures


# ---------------------------------------------------------------------------------------------
# Checks


class Report:
    def __init__(self, mode):
        self.mode = mode
        self.checks = []

    def check(self, name, ok, detail):
        self.checks.append({"mode": self.mode, "check": name, "result": "PASS" if ok else "FAIL",
                            "detail": detail})
        log(f"  [{self.mode}] {name:<13} {'PASS' if ok else 'FAIL'}  {detail}")


def overlaps(rec, windows):
    t1 = rec["t1"] if rec["t1"] is not None else float("inf")
    for w in windows:
        down, up = w["down"], w["up"] if w["up"] is not None else float("inf")
        if rec["t0"] <= up and t1 >= down:
            return True
    return False


def book_checks(rep, load, windows, total_used, usage, total_quota, tag=""):
    """The usage / quota invariants over every record so far."""
    with load.lock:
        recs = list(load.records)
    seen = {}
    for r in recs:
        if r["outcome"] == "answered":
            seen[r["code"]] = seen.get(r["code"], 0) + 1
    broken = sum(1 for r in recs if r["outcome"] in ("broken", "timeout"))
    refused = sum(1 for r in recs if r["outcome"] == "refused")
    s0 = seen.get(0, 0)
    u0 = usage.get(0, 0)
    counted_seen = sum(seen.get(c, 0) for c in COUNTING)
    counted_usage = sum(usage.get(c, 0) for c in COUNTING)
    pre = f"{tag}: " if tag else ""
    rep.check("success-kept", u0 >= s0, f"{pre}usage code 0 = {u0}, successes seen = {s0}")
    rep.check("no-double", u0 <= s0 + broken,
              f"{pre}usage code 0 = {u0} <= successes seen {s0} + broken {broken}")
    bad = []
    for c in sorted(set(seen) | set(usage)):
        if c == 0:
            continue
        # Busy (200217) answered before the body is read involves no key, and a store failure
        # during admission (10014) has no store to record it in: neither is always recorded.
        low = 0 if c in (200217, 10014) else seen.get(c, 0)
        if not (low <= usage.get(c, 0) <= seen.get(c, 0) + broken):
            bad.append(f"code {c}: seen {seen.get(c, 0)}, usage {usage.get(c, 0)}")
    rep.check("codes-kept", not bad,
              f"{pre}" + ("; ".join(bad) if bad else
                          f"every other code within [seen, seen + broken]: "
                          f"{ {c: usage.get(c, 0) for c in sorted(usage) if c != 0} }"))
    rep.check("quota-bounds", counted_seen <= total_used <= counted_seen + broken,
              f"{pre}total_used {total_used}; counting answers seen {counted_seen}; broken {broken}")
    leak = total_used - counted_usage
    rep.check("quota=usage", leak == 0,
              f"{pre}total_used {total_used} vs usage rows of counting codes {counted_usage}"
              + (f": {leak:+d} unit(s) reserved but never given back nor recorded" if leak else "")
              + f"; quota left {total_quota - total_used} of {total_quota}")
    return {"seen": {str(k): v for k, v in sorted(seen.items())}, "broken": broken,
            "refused": refused, "usage": {str(k): v for k, v in sorted(usage.items())},
            "total_used": total_used, "leaked_units": leak}


def stray_checks(rep, load, windows, stuck):
    with load.lock:
        recs = list(load.records)
    stray = [r for r in recs if r["outcome"] in ("refused", "broken", "timeout", "bad_body")
             and (r["outcome"] == "bad_body" or not overlaps(r, windows))]
    five = [r for r in recs if r["outcome"] == "answered" and r["status"] and r["status"] >= 500
            and not (r["status"] == 503 and r["code"] == 200217)]
    rep.check("no-stray", not stray and not five and not stuck,
              f"{len(recs)} requests; failures outside kill windows: {len(stray)}; "
              f"HTTP 5xx (not busy): {len(five)}; clients stuck: {stuck}"
              + (f"; e.g. {[(r['target'], r['outcome'], r.get('error')) for r in stray[:3]]}"
                 if stray else ""))
    timeouts = [r for r in recs if r["outcome"] == "timeout"]
    rep.check("timeouts", not timeouts, f"{len(timeouts)} requests without an answer in 60 s")


def all_tokens(load):
    with load.lock:
        return {t: r for r in load.records for t in r["tokens"]}


def token_check(rep, load, targets, key, t_origin):
    toks = all_tokens(load)
    fails = verify_tokens(targets, key, sorted(toks))
    detail = f"{len(toks)} distinct token_ids checked, {len(fails)} do not resolve"
    if fails:
        ex = []
        for tok, code in fails[:5]:
            r = toks[tok]
            ex.append(f"{tok} (answered by {r['target']} at t={r['t1'] - t_origin:.1f} s, now {code})")
        detail += ": " + "; ".join(ex)
    rep.check("tokens", not fails, detail)
    return {"checked": len(toks), "failed": [[t, c] for t, c in fails]}


def codes_in_window(load, w, kind=None):
    """Answers (code or outcome) of the requests (of `kind`: load or probe) that overlapped
    window w, with their slowest time: {code: [count, max seconds]}."""
    with load.lock:
        recs = [r for r in load.records if overlaps(r, [w]) and kind in (None, r["kind"])]
    by = {}
    for r in recs:
        k = str(r["code"] if r["outcome"] == "answered" else r["outcome"])
        n, mx = by.get(k, [0, 0.0])
        by[k] = [n + 1, round(max(mx, (r["t1"] or r["t0"]) - r["t0"]), 1)]
    return by


def kill_with_requests_in_flight(load, kill, name=None, timeout=15):
    """Call kill() under the load's lock as soon as a request is in flight (to `name`, or to
    any target). Returns (the number in flight at that moment, the monotonic time just before
    the kill)."""
    t0 = time.time()
    while True:
        with load.lock:
            n = sum(1 for r in load.in_flight.values() if name is None or r["target"] == name)
            if n > 0 or time.time() - t0 > timeout:
                t_kill = time.monotonic()
                kill()
                if name is not None and name in load.targets:
                    load.targets[name] = None
                return n, t_kill
        time.sleep(0.01)


def wait_successes(load, n, timeout, name=None):
    base = load.successes(name)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if load.successes(name) >= base + n:
            return True
        time.sleep(0.2)
    return False


# ---------------------------------------------------------------------------------------------
# SQLite


def run_sqlite(a, binary, images, tmp):
    rep = Report("sqlite")
    out = {"cycles": []}
    data = os.path.join(tmp, "sqlite-data")
    env = clean_env({"FACELENS_RETAIN_TOKENS": "true", "FACELENS_TOKEN_TTL_SECS": "259200"})
    cli = Cli(binary, ["--data-dir", data], env)
    quota = 100000
    key_id, key = cli.create_key("crash load", quota)
    _, vkey = cli.create_key("crash verify")
    srv = Server("sqlite-serve", binary, ["--data-dir", data, "--workers", str(a.workers),
                                          "--queue-depth", str(a.queue_depth)],
                 env, os.path.join(tmp, "sqlite-serve.log"))
    ready = srv.start()
    log(f"crash-test sqlite: server up in {ready:.1f} s on port {srv.port}; data {data}")
    # One Load object for every cycle, so the checks see every request; clients pause while
    # the server is down (the target is None: "refused", never sent).
    load = Load(images, key, a.clients, a.seed)
    windows = []
    t_origin = time.monotonic()
    rng = random.Random(a.seed)
    for cycle in range(1, a.cycles + 1):
        load.stop.clear()
        load.threads = []
        load.set_target("serve", (srv.host, srv.port))
        load.start()
        wait_successes(load, 3, 120)
        time.sleep(rng.uniform(a.min_load, a.max_load))
        in_flight, t_kill = kill_with_requests_in_flight(load, srv.kill9, "serve")
        load.stop.set()  # no new request after the kill; the ones in flight stay in flight
        w = {"what": f"serve (cycle {cycle})", "down": t_kill, "up": None}
        windows.append(w)
        stuck = load.finish()
        load.set_target("serve", None)
        t = time.monotonic()
        try:
            restart_s = srv.start()
            ok_restart = True
        except RuntimeError as e:
            restart_s, ok_restart = None, False
            log(str(e))
        w["up"] = time.monotonic()
        rep.check("restart", ok_restart, f"cycle {cycle}: restarted on the same data dir, ready in "
                  f"{restart_s:.1f} s" if ok_restart else f"cycle {cycle}: restart failed")
        rep.check("in-flight", in_flight > 0, f"cycle {cycle}: {in_flight} requests in flight at "
                  f"the kill")
        if not ok_restart:
            break
        used = cli.key(key_id)["total_used"]
        usage = cli.usage(key_id)
        books = book_checks(rep, load, windows, used, usage, quota, f"after cycle {cycle}")
        out["cycles"].append({"cycle": cycle, "in_flight_at_kill": in_flight,
                              "restart_s": restart_s, "clients_stuck": stuck, **books})
        toks = token_check(rep, load, [(srv.host, srv.port)], vkey, t_origin)
        out["cycles"][-1]["tokens"] = toks
        if stuck:
            break
    stray_checks(rep, load, windows, 0)
    # The restarted server still serves new work.
    load.stop.clear()
    load.threads = []
    load.set_target("serve", (srv.host, srv.port))
    load.start()
    ok_new = wait_successes(load, 3, 120)
    load.finish()
    rep.check("serves", ok_new, "the restarted server answers new requests with success")
    out["stop_exit"] = srv.stop()
    out["requests"] = len(load.records)
    return rep, out


# ---------------------------------------------------------------------------------------------
# PostgreSQL + Redis, two replicas


def pg_bin_dir():
    d = os.environ.get("PG_BIN")
    if d:
        return d
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                   key=lambda p: int(re.sub(r"\D", "", p.split("/")[-2]) or 0))
    if not cands:
        raise RuntimeError("no PostgreSQL binaries (set PG_BIN to the folder of initdb/pg_ctl)")
    return cands[-1]


def children_of(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == pid:
            out.append(int(p))
    return out


def become_subreaper():
    """Let orphaned descendants (the postmaster that pg_ctl daemonises, its backends) be
    reparented to this process so that their exits can be reaped here (no zombies holding
    PostgreSQL's lock files when the container's init does not reap). Linux only; best effort."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(pid):
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class PgCluster:
    def __init__(self, base):
        self.bin = pg_bin_dir()
        self.base = base
        self.dir = os.path.join(base, "data")
        self.sock = os.path.join(base, "sock")
        self.log = os.path.join(base, "postgres.log")
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = os.environ.get("PG_RUN_AS", "postgres")
        os.makedirs(self.sock)
        if self.user:
            pw = pwd.getpwnam(self.user)
            for p in (base, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        become_subreaper()

    def cmd(self, args, check=True):
        full = [os.path.join(self.bin, args[0])] + args[1:]
        if self.user:
            full = ["runuser", "-u", self.user, "--"] + full
        p = subprocess.run(full, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {p.returncode}: {p.stderr.strip()}\n"
                               + tail(self.log))
        return p

    def init(self):
        self.cmd(["initdb", "-D", self.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync"])

    def start(self):
        t0 = time.time()
        # After a SIGKILL the old postmaster may linger as a zombie when nothing reaps it (a
        # container's init); PostgreSQL would take its lock file as a running server.
        lock = os.path.join(self.dir, "postmaster.pid")
        if os.path.exists(lock):
            try:
                old = self.pid()
            except (OSError, ValueError):
                old = None
            if old is None or not alive(old):
                os.unlink(lock)
                for f in glob.glob(os.path.join(self.sock, ".s.PGSQL.*.lock")):
                    os.unlink(f)
        self.cmd(["pg_ctl", "-D", self.dir, "-l", self.log, "-w", "-t", "120", "-o",
                  f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1", "start"])
        return time.time() - t0

    def pid(self):
        with open(os.path.join(self.dir, "postmaster.pid")) as f:
            return int(f.readline())

    def kill(self):
        """SIGKILL the postmaster (only it). -> {"pid", "kids"}"""
        pid = self.pid()
        kids = children_of(pid)
        os.kill(pid, signal.SIGKILL)
        return {"pid": pid, "kids": kids}

    def wait_dead(self, killed):
        """Wait for the postmaster and its children to be gone (backends notice the
        postmaster's death and exit; a restart needs them gone). Children still alive after
        30 s are killed too. -> those."""
        t0 = time.time()
        while alive(killed["pid"]) and time.time() - t0 < 10:
            time.sleep(0.05)
        while any(alive(k) for k in killed["kids"]) and time.time() - t0 < 30:
            time.sleep(0.1)
        left = [k for k in killed["kids"] if alive(k)]
        for k in left:
            os.kill(k, signal.SIGKILL)
        return left

    def stop(self):
        self.cmd(["pg_ctl", "-D", self.dir, "-m", "immediate", "-w", "stop"], check=False)


def redis_cmd(url, *cmd):
    """One Redis command over RESP (db from the URL's path). -> reply line or None."""
    u = urllib.parse.urlparse(url)
    db = (u.path or "/0").strip("/") or "0"
    try:
        s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=3)
    except OSError:
        return None

    def enc(*args):
        return b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(x.encode()), x.encode()) for x in args)

    try:
        s.sendall(enc("SELECT", db) + enc(*cmd))
        f = s.makefile("rb")
        f.readline()
        return f.readline().decode().strip()
    except OSError:
        return None
    finally:
        s.close()


def run_replicated(a, binary, images, tmp):
    rep = Report("replicated")
    out = {"cycles": [], "windows": []}
    pgbase = os.path.join(tmp, "pg")
    os.makedirs(pgbase)
    os.chmod(tmp, 0o755)
    pg = PgCluster(pgbase)
    pg.init()
    pg.start()
    log(f"crash-test replicated: private PostgreSQL {pg.bin} on 127.0.0.1:{pg.port}, pid {pg.pid()}")
    redis_url = os.environ.get("FACELENS_CRASH_REDIS_URL", "redis://127.0.0.1:6379/13")
    # Units reserved by requests that a dead replica never finished are given back by the
    # replicas' periodic purge once older than reservation_ttl_secs (a shared store holds other
    # replicas' live requests, so not at start): a short TTL and purge interval here, so the
    # books can be checked after one TTL. Settings a binary does not know are ignored.
    extra = {"FACELENS_RETAIN_TOKENS": "true", "FACELENS_TOKEN_TTL_SECS": "259200",
             "FACELENS_RESERVATION_TTL_SECS": str(a.reservation_ttl),
             "FACELENS_PURGE_INTERVAL_SECS": str(a.purge_interval)}
    if redis_url != "none" and redis_cmd(redis_url, "PING") == "+PONG":
        extra.update({"FACELENS_REDIS_URL": redis_url, "FACELENS_IP_RATE_PER_SECOND": "100000",
                      "FACELENS_IP_RATE_BURST": "100000"})
        out["redis"] = redis_url
        log(f"crash-test replicated: per-IP rate limits through Redis {redis_url}")
    else:
        out["redis"] = None
        log("crash-test replicated: Redis not used (unreachable or FACELENS_CRASH_REDIS_URL=none)")
    env = clean_env(extra)
    cli = Cli(binary, ["--database-url", pg.url], env)
    quota = 100000
    key_id, key = cli.create_key("crash load", quota)
    _, vkey = cli.create_key("crash verify")
    reps = {}
    for name in ("r1", "r2"):
        reps[name] = Server(name, binary, ["--data-dir", os.path.join(tmp, name), "--database-url",
                                           pg.url, "--workers", str(a.replica_workers),
                                           "--queue-depth", str(a.queue_depth)],
                            env, os.path.join(tmp, f"{name}.log"))
        s = reps[name].start()
        log(f"  {name} up in {s:.1f} s on port {reps[name].port}")
    load = Load(images, key, a.clients, a.seed)
    for n, r in reps.items():
        load.set_target(n, (r.host, r.port))
    windows = []
    t_origin = time.monotonic()
    load.start()
    rng = random.Random(a.seed)
    stuck = 0
    try:
        for cycle in range(1, a.cycles + 1):
            victim = "r1" if cycle % 2 else "r2"
            r = reps[victim]
            wait_successes(load, 3, 120)
            time.sleep(rng.uniform(a.min_load, a.max_load))
            inflight, t_kill = kill_with_requests_in_flight(load, r.kill9, victim)
            w = {"what": f"{victim} (cycle {cycle})", "down": t_kill, "up": None}
            windows.append(w)
            rep.check("in-flight", inflight > 0,
                      f"cycle {cycle}: {inflight} requests in flight to {victim} at its kill")
            time.sleep(a.replica_down)
            try:
                s = r.start()
                rep.check("restart", True, f"cycle {cycle}: {victim} restarted, ready in {s:.1f} s")
            except RuntimeError as e:
                rep.check("restart", False, f"cycle {cycle}: {victim} did not restart: {e}")
                raise
            w["up"] = time.monotonic()
            load.set_target(victim, (r.host, r.port))
            wait_successes(load, 3, 120, victim)
            time.sleep(rng.uniform(a.min_load, a.max_load))
            # The database goes away under load.
            killed = {}
            inflight_pg, t_kill = kill_with_requests_in_flight(
                load, lambda: killed.update(pg.kill()))
            wpg = {"what": f"postgres (cycle {cycle})", "down": t_kill, "up": None}
            windows.append(wpg)
            pid, nkids = killed["pid"], len(killed["kids"])
            left = pg.wait_dead(killed)
            rep.check("in-flight", inflight_pg > 0,
                      f"cycle {cycle}: {inflight_pg} requests in flight at the postmaster's kill "
                      f"(pid {pid}, {nkids} children, {len(left)} had to be killed too)")
            pg_up = threading.Event()
            probes = load.probe_while(pg_up)
            downs = [float(x) for x in str(a.pg_down).split(",") if x.strip()]
            time.sleep(downs[(cycle - 1) % len(downs)])
            pg_up.set()
            try:
                s = pg.start()
            except RuntimeError as e:
                rep.check("restart", False, f"cycle {cycle}: PostgreSQL did not restart: {e}")
                raise
            t0 = time.time()
            while time.time() - t0 < 120 and not all(x.ready() for x in reps.values()):
                time.sleep(0.2)
            wpg["up"] = time.monotonic()
            ok = all(x.ready() for x in reps.values())
            rep.check("restart", ok, f"cycle {cycle}: PostgreSQL restarted in {s:.1f} s; both "
                      f"replicas ready {time.time() - t0:.1f} s later" if ok else
                      f"cycle {cycle}: replicas not ready 120 s after PostgreSQL restarted")
            wait_successes(load, 3, 120)
            for t in probes:
                t.join(REQUEST_TIMEOUT + 10)
            out["cycles"].append({"cycle": cycle, "replica_killed": victim,
                                  "in_flight_at_replica_kill": inflight,
                                  "in_flight_at_pg_kill": inflight_pg,
                                  "answers_during_replica_down": codes_in_window(load, w),
                                  "answers_during_pg_down": codes_in_window(load, wpg),
                                  "probe_answers_during_pg_down":
                                      codes_in_window(load, wpg, "probe"),
                                  "pg_down_s": round(wpg["up"] - wpg["down"], 1)})
            log(f"  cycle {cycle}: answers [count, slowest s] while {victim} was down "
                f"{codes_in_window(load, w)}; while PostgreSQL was down "
                f"{codes_in_window(load, wpg)}, of which probes sent during the outage "
                f"{codes_in_window(load, wpg, 'probe')}")
    finally:
        stuck = load.finish()
    out["windows"] = [{"what": w["what"], "down_s": round(w["down"] - t_origin, 1),
                       "up_s": round(w["up"] - t_origin, 1) if w["up"] else None} for w in windows]
    try:
        # Wait (at most one TTL + two purges + margin) for the replicas to give back what the
        # killed requests left reserved.
        t0 = time.time()
        deadline = t0 + a.reservation_ttl + 2 * a.purge_interval + 15
        while True:
            used = cli.key(key_id)["total_used"]
            usage = cli.usage(key_id)
            if used == sum(usage.get(c, 0) for c in COUNTING) or time.time() > deadline:
                break
            time.sleep(a.purge_interval)
        out["books_waited_s"] = round(time.time() - t0, 1)
        log(f"  books read {out['books_waited_s']} s after the load stopped "
            f"(reservation_ttl_secs {a.reservation_ttl}, purge every {a.purge_interval} s)")
        out["books"] = book_checks(rep, load, windows, used, usage, quota,
                                   f"{out['books_waited_s']:.0f} s after the load")
        out["tokens"] = token_check(rep, load, [(x.host, x.port) for x in reps.values()], vkey,
                                    t_origin)
    except RuntimeError as e:
        rep.check("books", False, f"could not read the store: {e}")
    stray_checks(rep, load, windows, stuck)
    out["requests"] = len(load.records)
    for x in reps.values():
        x.stop()
    pg.stop()
    if out["redis"]:
        redis_cmd(redis_url, "DEL", "facelens127.0.0.1")
    return rep, out


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["sqlite", "replicated", "both"], default="both")
    ap.add_argument("--cycles", type=int, default=3, help="kill cycles per mode (default 3)")
    ap.add_argument("--clients", type=int, default=6, help="client threads (default 6)")
    ap.add_argument("--workers", type=int, default=2, help="serve --workers, sqlite mode")
    ap.add_argument("--replica-workers", type=int, default=1, help="serve --workers per replica")
    ap.add_argument("--queue-depth", type=int, default=8)
    ap.add_argument("--min-load", type=float, default=2.0, help="seconds of load before a kill, min")
    ap.add_argument("--max-load", type=float, default=6.0, help="... max (random in between)")
    ap.add_argument("--replica-down", type=float, default=2.0, help="seconds a replica stays down")
    ap.add_argument("--pg-down", default="6,45,75",
                    help="seconds PostgreSQL stays down, per cycle in turn (default 6,45,75: "
                         "shorter, longer, much longer than the store's 30 s pool-acquire "
                         "timeout)")
    ap.add_argument("--reservation-ttl", type=int, default=60,
                    help="replicas' reservation_ttl_secs (default 60; the books are read once "
                         "it has passed)")
    ap.add_argument("--purge-interval", type=int, default=5,
                    help="replicas' purge_interval_secs (default 5)")
    ap.add_argument("--images", type=int, default=600, help="UTKFace crops in the pool")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (stores, logs)")
    a = ap.parse_args()

    binary = facelens_bin()
    evaldata = os.environ.get("FACELENS_EVALDATA") or os.path.join(REPO, "..", "shared", "evaldata")
    crops = sorted(glob.glob(os.path.join(evaldata, "attributes", "utkface", "*.jpg")))
    if not crops:
        log(f"crash-test: no UTKFace crops under {evaldata} (set FACELENS_EVALDATA)")
        return 2
    random.Random(a.seed).shuffle(crops)
    images = []
    for p in crops[:a.images]:
        with open(p, "rb") as f:
            images.append((os.path.basename(p), base64.b64encode(f.read()).decode()))
    tmp = tempfile.mkdtemp(prefix="facelens-crash-")
    log(f"crash-test: temp dir {tmp}")
    results = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "config": {k: v for k, v in vars(a).items() if k != "json_out"},
               "cpus": os.cpu_count()}
    reports = []
    setup_failed = False
    for mode, fn in (("sqlite", run_sqlite), ("replicated", run_replicated)):
        if a.mode not in (mode, "both"):
            continue
        try:
            rep, out = fn(a, binary, images, tmp)
            results[mode] = out
            reports.append(rep)
        except (RuntimeError, OSError, KeyError, ValueError, subprocess.TimeoutExpired) as e:
            log(f"crash-test {mode}: setup/run failed: {e}")
            results[mode] = {"error": str(e)}
            setup_failed = True
    checks = [c for r in reports for c in r.checks]
    results["checks"] = checks
    failed = [c for c in checks if c["result"] == "FAIL"]
    results["passed"] = not failed and not setup_failed
    print(f"\n{'mode':<11} {'check':<13} {'result':<6} detail")
    for c in checks:
        print(f"{c['mode']:<11} {c['check']:<13} {c['result']:<6} {c['detail']}")
    print("\nCRASH TEST " + ("PASSED" if results["passed"] else
                             f"FAILED ({len(failed)} failed checks"
                             + (", a mode could not run" if setup_failed else "") + ")"))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if a.keep or not results["passed"]:
        log(f"crash-test: logs and stores kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if setup_failed and not checks:
        return 2
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
