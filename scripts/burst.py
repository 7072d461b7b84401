#!/usr/bin/env python3
"""Burst test of `facelens serve`: hundreds of large uploads at once, then the same trickled.

    scripts/burst.py [--clients 300] [--body-mib 10] [--phases fast,trickle]
                     [--trickle-seconds 20] [--json OUT] [--keep] [-- extra serve flags]
    scripts/burst.py --url http://127.0.0.1:8080 --key KEY [--pid SERVER_PID] ...

Without --url it starts `facelens serve` ($FACELENS_BIN, else target/debug/facelens) with its
defaults (workers, queue, body limit, connection cap) on a free loopback port and a fresh
temporary data dir, with one key created by the CLI; with --url it targets a running server
(--pid lets it read that server's memory; without it the RSS check is skipped).

Each phase sends `--clients` uploads at once (all start on one barrier), each on its own
connection: a form body of exactly `--body-mib` MiB (default 10, under the default 12 MiB
`max_body_bytes`) to /faceDetect/index, the contract's way: key, image_type=1 and a real face
photo base64 then url-encoded, filled up to the size with an extra field the server ignores.

  fast      each client sends its whole body as fast as the connection takes it
  trickle   each client sends its body in 64 KiB chunks spread over --trickle-seconds
            (default 20 s, inside the default 30 s `body_timeout_ms`): slow senders

Like curl, a client watches for an answer while it sends, and stops sending when one comes
(a server may answer "busy" before it has read the body). Every upload ends as one of: an
HTTP answer (status and error_code), "reset" (the connection was reset before an answer could
be read), "closed without answer", or "no answer" (nothing within --timeout s).

While a phase runs, a separate probe process GETs /healthz every --healthz-interval s (a fresh
connection each time, 5 s timeout; a probe that fails counts as 5,000 ms). It is a process of
its own because the 300 upload threads share one interpreter lock: a probe thread among them
waits for that lock after each of its socket calls, and that wait is the client's, not the
server's. The same probe also runs as a thread among the uploads ("in-client", reported for
comparison with earlier runs, not checked). Another thread sends a normal
request (the same photo, a small body) every --normal-interval s. The server's RSS
(/proc/PID/status VmRSS) is sampled every 0.1 s; growth = the phase's peak minus the median of
the 2 s before it (after three warm-up requests, so that model buffers are not counted).
Without --url each phase gets a fresh server and store.

Thresholds, one PASS/FAIL line each per phase (the targets of issue 31):

  rss        peak RSS growth <= --max-rss-growth-mib (default 1024)
  healthz    /healthz p99 <= --max-healthz-p99-ms (default 250) and every probe answered 200
  answered   every upload got an HTTP answer (no reset, no close without answer, no timeout)
  no-5xx     no upload or normal request answered with an HTTP status >= 500
  normal     every normal request got an HTTP answer (a result or busy)

Images: the first UTKFace crop under $FACELENS_EVALDATA (default ../shared/evaldata); when
that is absent, a generated 64x64 BMP (a "no face" answer, the same bytes path).
Standard library only. Exit status: 0 every check passes, 1 a check failed, 2 setup failed.
"""

import argparse
import base64
import glob
import json
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak import (  # noqa: E402  (the soak's server handling and helpers, shared)
    REPO,
    Server,
    clean_env,
    create_key,
    facelens_bin,
    percentile,
    tail,
    tiny_bmp,
)

MIB = 1024 * 1024
HEALTHZ_TIMEOUT = 5.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def face_image():
    root = os.environ.get("FACELENS_EVALDATA") or os.path.join(REPO, "..", "shared", "evaldata")
    crops = sorted(glob.glob(os.path.join(root, "attributes", "utkface", "*.jpg")))
    if crops:
        with open(crops[0], "rb") as f:
            return os.path.basename(crops[0]), f.read()
    return "generated 64x64 BMP", tiny_bmp(64, 64)


def form(key, image, size=None):
    """The contract's form body; with `size`, filled up to exactly `size` bytes."""
    b64 = urllib.parse.quote(base64.b64encode(image).decode(), safe="")
    body = f"key={key}&image_type=1&face_num=1&image={b64}".encode()
    if size is None:
        return body
    fill = size - len(body) - len(b"&pad=")
    if fill < 0:
        raise SystemExit(f"burst: the image alone is over {size} bytes")
    return body + b"&pad=" + b"0" * fill


def request_head(host, port, path, length):
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n"
            f"Connection: close\r\n\r\n").encode()


class Response:
    """Reads one HTTP/1.1 response (Content-Length or until close) from a socket."""

    def __init__(self):
        self.buf = b""
        self.status = None
        self.body = None

    def feed(self, data):
        self.buf += data
        return self.complete(eof=not data)

    def complete(self, eof=False):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self.buf[:end].decode("latin-1").split("\r\n")
        try:
            self.status = int(head[0].split()[1])
        except (IndexError, ValueError):
            self.status = -1
            return True
        length = None
        for line in head[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                try:
                    length = int(v.strip())
                except ValueError:
                    pass
        body = self.buf[end + 4:]
        if length is not None and len(body) >= length:
            self.body = body[:length]
            return True
        if eof:
            self.body = body
            return True
        return False

    def code(self):
        try:
            v = json.loads(self.body or b"")
            return v.get("error_code") if isinstance(v, dict) else None
        except ValueError:
            return None


def exchange(host, port, head, body, timeout, chunk=256 * 1024, pace=0.0):
    """Send head + body (chunks of `chunk` bytes, `pace` s apart), watching for an early answer;
    then read the answer. Returns (outcome, status, error_code, seconds, bytes sent) where
    outcome is "answer", "reset", "closed" or "timeout"."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    resp = Response()
    sent = 0
    try:
        s = socket.create_connection((host, port), timeout=min(timeout, 10))
    except OSError:
        return "refused", None, None, time.monotonic() - t0, 0
    try:
        s.setblocking(False)
        # (bytes, paced): the head goes at once; a trickled body waits `pace` after each send.
        parts = [(memoryview(head), False), (memoryview(body), pace > 0)]
        answered_early = False
        for part, paced in parts:
            off = 0
            while off < len(part) and not answered_early:
                now = time.monotonic()
                if now >= deadline:
                    return "timeout", None, None, now - t0, sent
                r, w, _ = select.select([s], [s], [], min(1.0, deadline - now))
                if r:
                    try:
                        got = s.recv(65536)
                    except (ConnectionResetError, BrokenPipeError):
                        return "reset", None, None, time.monotonic() - t0, sent
                    except BlockingIOError:
                        got = None
                    if got is not None:
                        if resp.feed(got):
                            answered_early = True
                            break
                        if not got:
                            return "closed", None, None, time.monotonic() - t0, sent
                if not w:
                    continue
                try:
                    k = s.send(part[off:off + chunk])
                except BlockingIOError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    # The server closed: read what it said before that, if anything.
                    answered_early = True
                    break
                off += k
                sent += k
                if paced and k:
                    # Trickle: wait, still watching for an answer.
                    select.select([s], [], [], max(0.0, min(pace, deadline - time.monotonic())))
            if answered_early:
                break
        while not resp.complete():
            now = time.monotonic()
            if now >= deadline:
                return "timeout", None, None, now - t0, sent
            r, _, _ = select.select([s], [], [], min(1.0, deadline - now))
            if not r:
                continue
            try:
                got = s.recv(65536)
            except BlockingIOError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return "reset", None, None, time.monotonic() - t0, sent
            if not got:
                if resp.feed(b"") and resp.status is not None:
                    break
                return "closed", None, None, time.monotonic() - t0, sent
            resp.feed(got)
        return "answer", resp.status, resp.code(), time.monotonic() - t0, sent
    except OSError:
        return "reset", None, None, time.monotonic() - t0, sent
    finally:
        s.close()


def outcome_label(outcome, status, code):
    if outcome == "answer":
        return f"HTTP {status} / {code}"
    return {"reset": "reset", "closed": "closed without answer", "timeout": "no answer (timeout)",
            "refused": "connection refused"}[outcome]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def healthz_probe(host, port):
    """One GET /healthz on a fresh connection: (ms, ok, failure or None)."""
    t0 = time.monotonic()
    out, status, _, _, _ = exchange(host, port,
                                    f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n"
                                    f"Connection: close\r\n\r\n".encode(), b"",
                                    HEALTHZ_TIMEOUT)
    ok = out == "answer" and status == 200
    ms = (time.monotonic() - t0) * 1000 if ok else HEALTHZ_TIMEOUT * 1000
    return ms, ok, (out if not ok else None)


def probe_main(target, interval):
    """The probe process (--probe-healthz HOST:PORT): probe every `interval` s until stdin
    closes; one line per probe on stdout: "<monotonic s> <ms> <ok 0|1> <failure|->"."""
    host, port = target.rsplit(":", 1)
    port = int(port)
    while True:
        t0 = time.monotonic()
        ms, ok, why = healthz_probe(host, port)
        print(f"{t0:.4f} {ms:.2f} {int(ok)} {why or '-'}", flush=True)
        r, _, _ = select.select([sys.stdin], [], [], max(0.0, interval - (time.monotonic() - t0)))
        if r and not sys.stdin.buffer.read1(4096):
            return 0


def healthz_stats(probes):
    """p50/p99/max of [(ms, ok, why)]."""
    ms = [m for m, _, _ in probes]
    fail = [why for _, ok, why in probes if not ok]
    return {"probes": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else None, "failed": len(fail),
            "failures": {w: fail.count(w) for w in sorted(set(fail))}}


def run_phase(name, a, host, port, pid, key, image):
    body = form(key, image, int(a.body_mib * MIB))
    head = request_head(host, port, "/faceDetect/index", len(body))
    normal_body = form(key, image)
    normal_head = request_head(host, port, "/faceDetect/index", len(normal_body))
    trickle = name == "trickle"
    chunk = 64 * 1024 if trickle else 256 * 1024
    pace = a.trickle_seconds / max(1, len(body) // chunk) if trickle else 0.0

    samples = []  # (t, rss KiB)
    stop = threading.Event()
    t_base = time.monotonic()

    def sampler():
        while not stop.is_set():
            r = rss_kib(pid) if pid else None
            if r is not None:
                samples.append((time.monotonic() - t_base, r))
            stop.wait(0.1)

    sth = threading.Thread(target=sampler, daemon=True)
    sth.start()
    time.sleep(2.0)  # the baseline window
    t_start = time.monotonic() - t_base

    healthz_in_client = []  # (ms, ok, why): the probe thread among the uploads

    def health_loop():
        while not stop.is_set():
            t0 = time.monotonic()
            healthz_in_client.append(healthz_probe(host, port))
            stop.wait(max(0.0, a.healthz_interval - (time.monotonic() - t0)))

    # The probe process (the checked figure): its lines are read as they come.
    prober = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--probe-healthz",
                               f"{host}:{port}", "--healthz-interval", str(a.healthz_interval)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    healthz = []  # (ms, ok, why, seconds since the burst started)

    def probe_reader():
        for line in prober.stdout:
            parts = line.split()
            if len(parts) == 4:
                healthz.append((float(parts[1]), parts[2] == "1",
                                None if parts[3] == "-" else parts[3], float(parts[0])))

    pth = threading.Thread(target=probe_reader, daemon=True)
    pth.start()

    normal = []  # label

    def normal_loop():
        while not stop.is_set():
            t0 = time.monotonic()
            out, status, code, _, _ = exchange(host, port, normal_head, normal_body, a.timeout)
            normal.append(outcome_label(out, status, code))
            stop.wait(max(0.0, a.normal_interval - (time.monotonic() - t0)))

    results = [None] * a.clients
    barrier = threading.Barrier(a.clients)

    def upload(i):
        try:
            barrier.wait(60)
        except threading.BrokenBarrierError:
            pass
        results[i] = exchange(host, port, head, body, a.timeout, chunk=chunk, pace=pace)

    hth = threading.Thread(target=health_loop, daemon=True)
    nth = threading.Thread(target=normal_loop, daemon=True)
    hth.start()
    nth.start()
    ups = [threading.Thread(target=upload, args=(i,), daemon=True) for i in range(a.clients)]
    for t in ups:
        t.start()
    for t in ups:
        t.join(a.timeout + 90)
    t_end = time.monotonic() - t_base
    time.sleep(1.0)  # the memory of the last answers
    stop.set()
    prober.stdin.close()
    try:
        prober.wait(HEALTHZ_TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        prober.kill()
    for t in (hth, nth, sth, pth):
        t.join(HEALTHZ_TIMEOUT + a.timeout + 5)

    by_label = {}
    for r in results:
        label = outcome_label(*r[:3]) if r else "client thread still running"
        by_label[label] = by_label.get(label, 0) + 1
    answered = sum(1 for r in results if r and r[0] == "answer")
    five = sum(1 for r in results if r and r[0] == "answer" and r[1] >= 500)
    full = sum(1 for r in results if r and r[4] == len(head) + len(body))
    secs = [r[3] for r in results if r]
    normal_by = {}
    for label in normal:
        normal_by[label] = normal_by.get(label, 0) + 1
    normal_answered = sum(n for k, n in normal_by.items() if k.startswith("HTTP "))
    normal_5xx = sum(n for k, n in normal_by.items()
                     if k.startswith("HTTP ") and int(k.split()[1]) >= 500)
    # When the slow probes came, in seconds after the uploads started (monotonic clocks of
    # one machine: the probe process's and this one's agree).
    t_burst = t_base + t_start
    slow = sorted(((round(t - t_burst, 2), round(ms)) for ms, _, _, t in healthz),
                  key=lambda x: -x[1])[:5]
    base = [r for t, r in samples if t < t_start]
    during = [r for t, r in samples if t >= t_start]
    rss = None
    if base and during:
        b = statistics.median(base)
        rss = {"baseline_mib": b / 1024, "peak_mib": max(during) / 1024,
               "growth_mib": (max(during) - b) / 1024}
    return {
        "phase": name,
        "clients": a.clients,
        "body_bytes": len(body),
        "trickle_seconds": a.trickle_seconds if trickle else None,
        "duration_s": round(t_end - t_start, 1),
        "uploads_by_answer": dict(sorted(by_label.items(), key=lambda x: -x[1])),
        "uploads_answered": answered,
        "uploads_whole_body_sent": full,
        "uploads_5xx": five,
        "upload_seconds": {"p50": percentile(secs, 50), "max": max(secs) if secs else None},
        "healthz": dict(healthz_stats([h[:3] for h in healthz]),
                        slowest_at_s_ms=[list(x) for x in slow]),
        "healthz_in_client": healthz_stats(healthz_in_client),
        "normal_by_answer": normal_by,
        "normal_answered": normal_answered,
        "normal_sent": len(normal),
        "normal_5xx": normal_5xx,
        "rss": rss,
    }


def checks_for(p, a):
    out = []

    def check(name, ok, detail):
        out.append({"phase": p["phase"], "check": name,
                    "result": "SKIP" if ok is None else ("PASS" if ok else "FAIL"),
                    "detail": detail})

    if p["rss"] is None:
        check("rss", None, "server RSS not readable (give --pid with --url)")
    else:
        check("rss", p["rss"]["growth_mib"] <= a.max_rss_growth_mib,
              f"peak RSS growth {p['rss']['growth_mib']:.0f} MiB (limit "
              f"{a.max_rss_growth_mib:.0f}; baseline {p['rss']['baseline_mib']:.0f}, peak "
              f"{p['rss']['peak_mib']:.0f} MiB)")
    hz = p["healthz"]
    if not hz["probes"]:
        check("healthz", False, "no /healthz probe completed")
    else:
        check("healthz", hz["p99_ms"] <= a.max_healthz_p99_ms and hz["failed"] == 0,
              f"/healthz p50 {hz['p50_ms']:.0f} ms, p99 {hz['p99_ms']:.0f} ms (limit "
              f"{a.max_healthz_p99_ms:.0f}), max {hz['max_ms']:.0f} ms; {hz['failed']} of "
              f"{hz['probes']} probes failed" + (f" {hz['failures']}" if hz["failed"] else ""))
    check("answered", p["uploads_answered"] == p["clients"],
          f"{p['uploads_answered']} of {p['clients']} uploads got an HTTP answer: "
          + ", ".join(f"{k}: {n}" for k, n in p["uploads_by_answer"].items()))
    check("no-5xx", p["uploads_5xx"] == 0 and p["normal_5xx"] == 0,
          f"{p['uploads_5xx']} uploads and {p['normal_5xx']} normal requests answered 5xx")
    check("normal", p["normal_sent"] > 0 and p["normal_answered"] == p["normal_sent"],
          f"{p['normal_answered']} of {p['normal_sent']} normal requests answered: "
          + ", ".join(f"{k}: {n}" for k, n in sorted(p["normal_by_answer"].items())))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=300, help="uploads at once (default 300)")
    ap.add_argument("--body-mib", type=float, default=10, help="body size in MiB (default 10)")
    ap.add_argument("--phases", default="fast,trickle", help="fast, trickle or both (default)")
    ap.add_argument("--trickle-seconds", type=float, default=20,
                    help="time a trickling client takes to send its body (default 20)")
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds an upload may take, answer included (default 120)")
    ap.add_argument("--healthz-interval", type=float, default=0.05)
    ap.add_argument("--normal-interval", type=float, default=0.5)
    ap.add_argument("--max-rss-growth-mib", type=float, default=1024)
    ap.add_argument("--max-healthz-p99-ms", type=float, default=250)
    ap.add_argument("--url", help="target a running server (http://HOST:PORT) instead")
    ap.add_argument("--key", help="with --url: an API key of that server")
    ap.add_argument("--pid", type=int, help="with --url: the server's pid (for its RSS)")
    ap.add_argument("--json", dest="json_out", help="write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data, server log)")
    ap.add_argument("serve_extra", nargs="*", help="after --: extra `facelens serve` flags")
    ap.add_argument("--probe-healthz", metavar="HOST:PORT", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.probe_healthz:
        return probe_main(a.probe_healthz, a.healthz_interval)
    a.body_mib = float(a.body_mib)
    phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    if not phases or any(p not in ("fast", "trickle") for p in phases):
        ap.error("--phases takes fast, trickle or fast,trickle")

    image_name, image = face_image()
    tmp = None if a.url else tempfile.mkdtemp(prefix="facelens-burst-")
    results = {"image": image_name, "cpus": os.cpu_count(), "phases": []}
    checks = []
    setup_failed = False
    for name in phases:
        # A fresh server (and store) per phase, so that one phase's memory is not the next
        # one's baseline; with --url, the same running server for every phase.
        server = None
        try:
            if a.url:
                u = urllib.parse.urlsplit(a.url)
                host, port, pid, key = u.hostname, u.port or 80, a.pid, a.key or ""
                what = f"target {a.url}" + (f" (pid {pid})" if pid else " (RSS not read)")
            else:
                binary = facelens_bin()
                data_dir = os.path.join(tmp, f"data-{name}")
                env = clean_env()
                _, key = create_key(binary, data_dir, env, "burst", 10**9)
                server = Server(binary, data_dir, os.path.join(tmp, f"serve-{name}.log"),
                                a.serve_extra, env)
                ready = server.wait_ready()
                host, port, pid = server.host, server.port, server.pid
                with open(server.log_path, "rb") as f:
                    m = re.search(rb"listening on [^(]*\(([^)]*)\)", f.read())
                said = m.group(1).decode() if m else "?"
                what = (f"{os.path.relpath(binary, REPO)} serve with its defaults"
                        f"{' + ' + ' '.join(a.serve_extra) if a.serve_extra else ''} ({said}), "
                        f"pid {pid}, ready in {ready:.1f} s")
        except (RuntimeError, OSError, ValueError) as e:
            log(f"burst: setup failed: {e}")
            if server:
                server.stop(10)
            setup_failed = True
            break
        results["target"] = what
        log(f"burst: phase {name}: {what}; image {image_name} ({len(image)} bytes); "
            f"{a.clients} clients x {a.body_mib:g} MiB")

        # Warm-up: normal requests, so that the baseline includes the models' working memory.
        for _ in range(3):
            warm = exchange(host, port,
                            request_head(host, port, "/faceDetect/index", len(form(key, image))),
                            form(key, image), 120)
        log(f"burst: warm-up requests: last {outcome_label(*warm[:3])}")
        if warm[0] != "answer":
            if server:
                log(tail(server.log_path))
                server.stop(10)
            setup_failed = True
            break

        try:
            p = run_phase(name, a, host, port, pid, key, image)
        except BaseException:
            if server:  # never leave a server behind
                server.stop(10)
            raise
        results["phases"].append(p)
        checks += checks_for(p, a)
        alive = server is None or server.proc.poll() is None
        log(f"burst: phase {name} took {p['duration_s']} s; server "
            f"{'still running' if alive else 'EXITED'}")
        if not alive:
            checks.append({"phase": name, "check": "alive", "result": "FAIL",
                           "detail": f"the server exited ({server.proc.returncode})"})
        if server:
            code = server.stop(30)
            p["server_exit"] = code
        else:
            time.sleep(3.0)  # let the queue drain before the next phase
    if setup_failed and not results["phases"]:
        return 2

    print(f"\nFacelens burst: {results.get('target')}; {os.cpu_count()} CPUs")
    for p in results["phases"]:
        hz = p["healthz"]
        print(f"\nphase {p['phase']}: {p['clients']} uploads of {p['body_bytes']} bytes"
              + (f", trickled over {p['trickle_seconds']:g} s" if p["trickle_seconds"] else "")
              + f"; {p['duration_s']} s")
        print("  uploads:  " + ", ".join(f"{k}: {n}" for k, n in p["uploads_by_answer"].items())
              + f" (whole body sent by {p['uploads_whole_body_sent']})")
        if hz["probes"]:
            print(f"  /healthz: {hz['probes']} probes, p50 {hz['p50_ms']:.0f} ms, p99 "
                  f"{hz['p99_ms']:.0f} ms, max {hz['max_ms']:.0f} ms, failed {hz['failed']}; "
                  "slowest (s into the burst, ms): "
                  + ", ".join(f"{t:g}: {ms}" for t, ms in hz["slowest_at_s_ms"]))
        ic = p["healthz_in_client"]
        if ic["probes"]:
            print(f"  /healthz from a thread among the uploads (not checked): {ic['probes']} "
                  f"probes, p50 {ic['p50_ms']:.0f} ms, p99 {ic['p99_ms']:.0f} ms, max "
                  f"{ic['max_ms']:.0f} ms, failed {ic['failed']}")
        print("  normal:   " + (", ".join(f"{k}: {n}" for k, n in sorted(p["normal_by_answer"].items()))
                                or "none sent"))
        if p["rss"]:
            print(f"  RSS:      baseline {p['rss']['baseline_mib']:.0f} MiB, peak "
                  f"{p['rss']['peak_mib']:.0f} MiB, growth {p['rss']['growth_mib']:.0f} MiB")
    print()
    for c in checks:
        print(f"{c['result']}: {c['phase']} {c['check']}: {c['detail']}")
    passed = all(c["result"] != "FAIL" for c in checks)
    print("\nBURST " + ("PASSED" if passed else "FAILED"))
    results["checks"] = checks
    results["passed"] = passed
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1)
    if tmp:
        if a.keep or not passed:
            log(f"burst: server logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
