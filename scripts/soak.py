#!/usr/bin/env python3
"""Soak test of `facelens serve`: saturation load with a valid/invalid mix, memory sampled.

    scripts/soak.py [--duration 600] [--threads 16] [--workers 2] [--queue-depth N]
                    [--connections keepalive|fresh] [--busy-backoff 0.25]
                    [--json OUT] [--keep] [-- extra serve flags]

Starts `facelens serve` ($FACELENS_BIN, else target/debug/facelens) on a free loopback port
with a fresh temporary data dir (SQLite store). Before it starts, two keys are created with the
CLI against the same data dir: the main key (a large total quota) and a key with a total quota
of 0 (every call refused 10012: the quota-refusal path); the "unknown key" requests use random
hex that is in no store. Keys are required (the default), so every request goes through the
key check.

`--threads` client threads (default 16, well above workers + queue: 2 + 8 by default, so that
"busy" 200217 answers happen) send requests back to back for `--duration` seconds, reusing
their connection (keep-alive) unless `--connections fresh`; a client answered busy waits
--busy-backoff x (0.5..1.5) s before its next request, as a polite client would (otherwise
busy answers, which take ~2 ms, are nearly all the traffic): about 70 % valid requests
(form, JSON and multipart bodies; image_type=3 with a token seen earlier) and 30 % invalid ones
of many kinds (bad base64, truncated JPEG, missing image, unknown key, face_num=99, body over
max_body_bytes, non-image bytes, a tiny image, image_type=7, a token_id that does not exist,
malformed JSON, malformed multipart, a key whose quota is used up). Images: UTKFace crops and
WIDER FACE photos from $FACELENS_EVALDATA (default ../shared/evaldata).

The server's RSS (/proc/PID/status VmRSS) is sampled every 5 s. Checks (exit code 0 only if
all pass):

  answered     every request got a complete HTTP answer (no connection error, no timeout at 60 s)
  no-5xx       no HTTP status >= 500 other than 503 with error_code 200217 (busy)
  envelope     every body is the contract's envelope: {reason: str, result, error_code: int},
               result null on error; on success face_num == len(face_list), 32-hex token_ids
  codes        every request kind got one of the codes docs/errors.md gives it, or busy (a full
               queue is answered busy before the body is read)
  usage        the store's usage report for each key equals the answers the clients saw, code by
               code (busy: at most what the clients saw, since busy answered before the body is
               read involves no key), and the main key's quota counter (total_used) equals its
               successes + no-face
  memory       resting: once a minute (--rest-every 60) the clients pause; when nothing is in
               flight the server rests --rest-seconds (10), then its RSS is read: the resting
               RSS of that minute. Each resting RSS from minute 2 on stays within 10 % of
               minute 2's (a leak or creep raises it; the working memory of the photos in
               flight does not count, since none are). Bounded: peak VmRSS <= 500 MiB. The
               lowest VmRSS of each minute under load ("floors") is reported for information:
               it moves with what happens to be in flight at the quietest sample. RULE printed
               with the result
  healthz      /healthz answers 200 {"status":"ok"} at the end (and /readyz 200)
  shutdown     SIGTERM at the end: the server exits with status 0 within 30 s

Standard library only. Exit status: 0 all checks pass, 1 a check failed, 2 setup failed.
"""

import argparse
import base64
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUEST_TIMEOUT = 60.0
BUSY = 200217
DEFAULT_MAX_BODY = 12 * 1024 * 1024

# Environment variables of the binary that would change what is tested (another store, no keys,
# a config file): removed from the server's and the CLI's environment.
KEEP_ENV = {"FACELENS_BACKEND", "FACELENS_THREADS", "FACELENS_LOG", "FACELENS_MAX_BODY_BYTES"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def facelens_bin():
    b = os.environ.get("FACELENS_BIN") or os.path.join(REPO, "target", "debug", "facelens")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise SystemExit(
            f"soak: no facelens binary at {b}: build it (cargo build -p facelens) or set FACELENS_BIN"
        )
    return b


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_") or k in KEEP_ENV}
    env.update(extra or {})
    return env


def run_cli(binary, args, env):
    p = subprocess.run([binary] + args, capture_output=True, text=True, env=env, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"facelens {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def create_key(binary, data_dir, env, name, total_quota):
    out = run_cli(
        binary,
        ["keys", "--data-dir", data_dir, "--json", "create", "--name", name,
         "--total-quota", str(total_quota)],
        env,
    )
    v = json.loads(out)
    return v["id"], v["key"]


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    def __init__(self, binary, data_dir, log_path, args, env):
        self.log_path = log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir] + args,
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
        )
        self.pid = self.proc.pid
        self.host, self.port = None, None
        self.backend, self.workers, self.queue = None, None, None

    def wait_ready(self, timeout=300):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}) while starting:\n"
                                   + tail(self.log_path))
            if self.port is None:
                with open(self.log_path, "rb") as f:
                    text = f.read()
                m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", text)
                if m:
                    self.host, self.port = "127.0.0.1", int(m.group(1))
                m = re.search(rb"backend (\S+?),(?: \w+,)? (\d+) workers, queue (\d+)", text)
                if m:
                    self.backend = m.group(1).decode()
                    self.workers, self.queue = int(m.group(2)), int(m.group(3))
            if self.port is not None:
                st, _ = get(self.host, self.port, "/readyz", timeout=5)
                if st == 200:
                    return time.time() - t0
            time.sleep(0.1)
        raise RuntimeError("server not ready in time:\n" + tail(self.log_path))

    def rss_kib(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def proc_counts(self):
        out = {}
        try:
            out["fds"] = len(os.listdir(f"/proc/{self.pid}/fd"))
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        out["threads"] = int(line.split()[1])
                    if line.startswith("VmHWM:"):
                        out["hwm_kib"] = int(line.split()[1])
        except OSError:
            pass
        return out

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log_file.close()
                return None
        self.log_file.close()
        return self.proc.returncode


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""


def get(host, port, path, timeout=10):
    try:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body
    except (OSError, http.client.HTTPException):
        return None, b""


# ---------------------------------------------------------------------------------------------
# Request mix


def tiny_bmp(w=10, h=10):
    row = (b"\x80\x80\x80" * w).ljust((w * 3 + 3) // 4 * 4, b"\0")
    pixels = row * h
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def multipart(fields, file_bytes=None, boundary=None):
    boundary = boundary or "----facelenssoak%016x" % random.getrandbits(64)
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    if file_bytes is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="face.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode() + file_bytes + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class Mix:
    """Builds requests. Each kind: weight, which key it uses (for the usage check), whether the
    body is readable (so admission runs and a known key's usage records the answer), and the
    codes docs/errors.md gives it (busy added where the request reaches the inference queue)."""

    def __init__(self, images, keys, max_body, seed):
        self.rng = random.Random(seed)
        self.images = images  # list of (name, bytes, b64)
        self.keys = keys
        self.max_body = max_body
        self.tokens = []
        self.tokens_lock = threading.Lock()
        self.oversized = None
        small = [im for im in images if len(im[1]) > 2000]
        self.truncated = [base64.b64encode(im[1][:700]).decode() for im in small[:50]]
        self.non_image = [
            base64.b64encode(b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\0" * 64).decode(),
            base64.b64encode(("this is plain text, not an image. " * 40).encode()).decode(),
            base64.b64encode(b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(range(256))).decode(),
        ]
        self.tiny = base64.b64encode(tiny_bmp()).decode()
        # kind: (weight, key label, admitted, expected codes, may be busy)
        self.kinds = {
            "valid_form": (52, "main", True, {0, 200216}, True),
            "valid_json": (7, "main", True, {0, 200216}, True),
            "valid_multipart": (7, "main", True, {0, 200216}, True),
            "valid_token": (4, "main", True, {0}, False),
            "bad_base64": (2.5, "main", True, {200202}, False),
            "truncated_jpeg": (2.5, "main", True, {200205}, True),
            "missing_image": (2.5, "main", True, {200201}, False),
            "unknown_key": (2.5, None, True, {10001}, False),
            "face_num_99": (2.5, "main", True, {200208}, False),
            "oversized_body": (1.5, "main", False, {200203}, False),
            "non_image": (2.5, "main", True, {200204}, True),
            "tiny_image": (2, "main", True, {200206}, True),
            "bad_image_type": (2, "main", True, {200210}, False),
            "unknown_token": (2.5, "main", True, {200215}, False),
            "malformed_json": (2.5, None, False, {200218}, False),
            "json_not_object": (1, None, False, {200218}, False),
            "malformed_multipart": (2.5, None, False, {200218}, False),
            "quota_used_up": (2.5, "zero", True, {10012}, False),
        }
        self.names = list(self.kinds)
        self.weights = [self.kinds[k][0] for k in self.names]

    def oversized_body(self):
        if self.oversized is None:
            filler = self.max_body + 64 * 1024
            self.oversized = urllib.parse.urlencode(
                {"key": self.keys["main"], "image_type": "1", "face_num": "1"}).encode() \
                + b"&image=" + b"A" * filler
        return self.oversized

    def add_token(self, tok):
        with self.tokens_lock:
            if len(self.tokens) < 5000:
                self.tokens.append(tok)
            else:
                self.tokens[self.rng.randrange(len(self.tokens))] = tok

    def pick(self, rng):
        kind = rng.choices(self.names, self.weights)[0]
        if kind == "valid_token":
            with self.tokens_lock:
                tok = rng.choice(self.tokens) if self.tokens else None
            if tok is None:
                kind = "valid_form"
        return kind, self.build(kind, rng)

    def build(self, kind, rng):
        """(method, path, body, content type) of one request of `kind`."""
        main = self.keys["main"]
        _, raw, b64 = rng.choice(self.images)
        face_num = str(rng.choice([1, 1, 1, 2, 3, 5, 10]))

        def form(d):
            return "POST", "/faceDetect/index", urllib.parse.urlencode(d).encode(), FORM

        if kind == "valid_form":
            return form({"key": main, "image": b64, "image_type": "1", "face_num": face_num})
        if kind == "valid_json":
            body = json.dumps({"key": main, "image": b64, "image_type": 1, "face_num": int(face_num)})
            return "POST", "/faceDetect/index", body.encode(), JSON
        if kind == "valid_multipart":
            body, ct = multipart({"key": main, "face_num": face_num, "image_type": "1"}, raw)
            return "POST", "/faceDetect/index", body, ct
        if kind == "valid_token":
            with self.tokens_lock:
                tok = rng.choice(self.tokens)
            return form({"key": main, "image": tok, "image_type": "3"})
        if kind == "bad_base64":
            return form({"key": main, "image": "!!not*base64%%" + b64[:100], "image_type": "1"})
        if kind == "truncated_jpeg":
            return form({"key": main, "image": rng.choice(self.truncated), "image_type": "1"})
        if kind == "missing_image":
            return form({"key": main, "image_type": "1", "face_num": "1"})
        if kind == "unknown_key":
            return form({"key": "%032x" % rng.getrandbits(128), "image": b64, "image_type": "1"})
        if kind == "face_num_99":
            return form({"key": main, "image": b64, "image_type": "1", "face_num": "99"})
        if kind == "oversized_body":
            return "POST", "/faceDetect/index", self.oversized_body(), FORM
        if kind == "non_image":
            return form({"key": main, "image": rng.choice(self.non_image), "image_type": "1"})
        if kind == "tiny_image":
            return form({"key": main, "image": self.tiny, "image_type": "1"})
        if kind == "bad_image_type":
            return form({"key": main, "image": b64, "image_type": "7"})
        if kind == "unknown_token":
            return form({"key": main, "image": "%032x" % rng.getrandbits(128), "image_type": "3"})
        if kind == "malformed_json":
            body = ('{"key": "%s", "image": "%s' % (main, b64[:200])).encode()
            return "POST", "/faceDetect/index", body, JSON
        if kind == "json_not_object":
            return "POST", "/faceDetect/index", json.dumps([main, b64[:100]]).encode(), JSON
        if kind == "malformed_multipart":
            b = "----soakbroken"
            body = (f'--{b}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{main}\r\n'
                    f'--{b}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
                    f"Content-Type: image/jpeg\r\n\r\n").encode() + raw[:300]  # no closing boundary
            return "POST", "/faceDetect/index", body, f"multipart/form-data; boundary={b}"
        if kind == "quota_used_up":
            return form({"key": self.keys["zero"], "image": b64, "image_type": "1"})
        raise ValueError(kind)


def check_envelope(body):
    """The parsed envelope, or raise ValueError saying what is wrong."""
    try:
        v = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not JSON: {e}; body starts {body[:120]!r}")
    if not isinstance(v, dict):
        raise ValueError("not a JSON object")
    if not isinstance(v.get("reason"), str):
        raise ValueError("reason missing or not a string")
    code = v.get("error_code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise ValueError("error_code missing or not an integer")
    if "result" not in v:
        raise ValueError("result missing")
    res = v["result"]
    if code != 0:
        if res is not None:
            raise ValueError(f"error {code} with a non-null result")
        return v
    if not isinstance(res, dict):
        raise ValueError("success without a result object")
    fl = res.get("face_list")
    if not isinstance(fl, list) or res.get("face_num") != len(fl) or not fl:
        raise ValueError("face_num / face_list inconsistent")
    for f in fl:
        t = f.get("token_id") if isinstance(f, dict) else None
        if not (isinstance(t, str) and re.fullmatch(r"[0-9a-f]{32}", t)):
            raise ValueError(f"bad token_id {t!r}")
    return v


# ---------------------------------------------------------------------------------------------
# Load


class Stats:
    def __init__(self, mix):
        self.lock = threading.Lock()
        self.n = 0
        self.by_kind = {}  # kind -> {code or error label: count}
        self.latency = []  # seconds, every answered request
        self.latency_ok = []  # successes only
        self.n_errors = 0  # requests without a complete answer
        self.err_categories = {}  # category -> {count, examples}
        self.busy_headers = {}
        self.http5xx = []  # (kind, status, code)
        self.bad_envelope = []  # (kind, status, error)
        self.unexpected_code = []  # (kind, code)
        self.statuses = {}
        self.mix = mix

    def note_busy(self, conn_close):
        with self.lock:
            k = "busy_with_connection_close" if conn_close else "busy_keep_alive"
            self.busy_headers[k] = self.busy_headers.get(k, 0) + 1

    def add(self, kind, status, code, dt, err=None, env_err=None, category=None):
        k = self.mix.kinds[kind]
        with self.lock:
            self.n += 1
            d = self.by_kind.setdefault(kind, {})
            label = code if err is None and env_err is None else ("error" if err else "bad_envelope")
            d[label] = d.get(label, 0) + 1
            if err is not None:
                self.n_errors += 1
                c = self.err_categories.setdefault(category, {"count": 0, "examples": []})
                c["count"] += 1
                if len(c["examples"]) < 3:
                    c["examples"].append(f"{kind}: {err}")
                return
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.latency.append(dt)
            if code == 0:
                self.latency_ok.append(dt)
            if status >= 500 and not (status == 503 and code == BUSY):
                self.http5xx.append((kind, status, code))
            if env_err is not None:
                if len(self.bad_envelope) < 1000:
                    self.bad_envelope.append((kind, status, env_err))
                return
            # Busy may answer any request: a full queue is refused before the body is read.
            allowed = k[3] | {BUSY}
            if code not in allowed and len(self.unexpected_code) < 1000:
                self.unexpected_code.append((kind, code))


def client(host, port, mix, stats, stop, seed, opts):
    try:
        client_loop(host, port, mix, stats, stop, seed, opts)
    except Exception as e:  # a bug of this script must not pass for a quiet client
        stats.add("valid_form", None, None, 0.0, err=f"client thread crashed: {e!r}",
                  category="client thread crashed")


class Pause:
    """The clients' pause for the rest windows: `go` is set while they may send; `inflight`
    counts the requests sent and not yet answered; `generation` counts the rests, so that a
    client opens a new connection after one (the server closes a connection idle for longer
    than its header timeout, 10 s, and a rest is that long: reusing it would race that close,
    which a client pool avoids by not reusing connections idle that long)."""

    def __init__(self):
        self.go = threading.Event()
        self.go.set()
        self.lock = threading.Lock()
        self.inflight = 0
        self.generation = 0

    def enter(self, stop):
        while True:
            if self.go.wait(0.5):
                with self.lock:  # `go` is cleared under this lock: no request slips into a rest
                    if self.go.is_set():
                        self.inflight += 1
                        return True
            if stop.is_set():
                return False

    def hold(self):
        with self.lock:
            self.go.clear()

    def leave(self):
        with self.lock:
            self.inflight -= 1


def client_loop(host, port, mix, stats, stop, seed, opts):
    """Requests back to back. Keep-alive (the default, as real clients do): one connection
    reused while the server keeps it open; http.client reconnects after an answer that says
    `Connection: close`. --connections fresh: a new connection per request."""
    rng = random.Random(seed)
    conn = None
    uses = 0  # requests answered on this connection so far
    last_code = None  # code of the previous answer on this connection
    pause = opts.pause
    generation = pause.generation
    while not stop.is_set():
        if not pause.enter(stop):
            break
        if pause.generation != generation:
            generation = pause.generation
            if conn is not None:
                conn.close()
                conn = None
        try:
            conn, uses, last_code, busy = one_request(host, port, mix, stats, rng, conn, opts,
                                                      uses, last_code)
        finally:
            pause.leave()
        if busy and opts.busy_backoff > 0:
            time.sleep(opts.busy_backoff * rng.uniform(0.5, 1.5))
    if conn is not None:
        conn.close()


def one_request(host, port, mix, stats, rng, conn, opts, uses, last_code):
    """One request of the mix on `conn` (or a new connection). Returns (the connection to
    reuse or None, uses, last code, whether the answer was busy)."""
    kind, (method, path, body, ctype) = mix.pick(rng)
    fresh = opts.connections == "fresh" or kind in ("oversized_body", "malformed_multipart")
    if conn is None or fresh or conn.sock is None:
        if conn is not None:
            conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        uses, last_code = 0, None
    t0 = time.monotonic()
    status, data, err = None, None, None
    try:
        conn.request(method, path, body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        data = resp.read()
        status = resp.status
        conn_close = (resp.getheader("connection") or "").lower() == "close"
    except (BrokenPipeError, ConnectionResetError) as e:
        # A server may answer a body over its limit before reading all of it: read the
        # answer that came before the reset, if any.
        err = e
        try:
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            conn_close = True
        except (OSError, http.client.HTTPException):
            pass
    except (OSError, http.client.HTTPException) as e:
        err = e
    dt = time.monotonic() - t0
    if status is None:
        if uses == 0:
            cat = "new connection: no answer"
        elif last_code == BUSY:
            cat = "reused connection, previous answer busy: no answer"
        else:
            cat = f"reused connection, previous answer {last_code}: no answer"
        stats.add(kind, None, None, dt, err=f"{type(err).__name__}: {err}", category=cat)
        conn.close()
        return None, uses, last_code, False
    uses += 1
    try:
        env = check_envelope(data)
    except ValueError as e:
        stats.add(kind, status, None, dt, env_err=str(e))
        conn.close()
        return None, uses, last_code, False
    code = env["error_code"]
    last_code = code
    if code == BUSY:
        stats.note_busy(conn_close)
    if fresh or conn_close:
        conn.close()
        conn = None
    if code == 0 and kind != "valid_token":
        for f in env["result"]["face_list"]:
            mix.add_token(f["token_id"])
    stats.add(kind, status, code, dt)
    return conn, uses, last_code, code == BUSY


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[i]


# ---------------------------------------------------------------------------------------------


def load_images(root, n_crops, n_photos, seed):
    rng = random.Random(seed)
    crops = sorted(glob.glob(os.path.join(root, "attributes", "utkface", "*.jpg")))
    photos = sorted(glob.glob(os.path.join(root, "detection", "wider_face_val", "images", "*", "*.jpg")))
    if not crops and not photos:
        raise SystemExit(f"soak: no images under {root} (set FACELENS_EVALDATA)")
    rng.shuffle(crops)
    rng.shuffle(photos)
    out = []
    for p in crops[:n_crops] + photos[:n_photos]:
        with open(p, "rb") as f:
            raw = f.read()
        out.append((os.path.basename(p), raw, base64.b64encode(raw).decode()))
    return out


def usage_by_code(binary, data_dir, env, key_id):
    out = run_cli(binary, ["usage", "--data-dir", data_dir, "--json", "--key", str(key_id),
                           "--days", "2"], env)
    by = {}
    for row in json.loads(out):
        by[row["code"]] = by.get(row["code"], 0) + row["count"]
    return by


def key_total_used(binary, data_dir, env, key_id):
    out = run_cli(binary, ["keys", "--data-dir", data_dir, "--json", "show", str(key_id)], env)
    return json.loads(out)["total_used"]


def read_resting(server, n=5, gap=0.2):
    """The resting RSS (KiB): the median of n reads `gap` s apart, or None."""
    reads = []
    for i in range(n):
        r = server.rss_kib()
        if r is not None:
            reads.append(r)
        if i + 1 < n:
            time.sleep(gap)
    return statistics.median(reads) if reads else None


def resting_rule(rests, tol, first_minute, peak_kib, peak_limit_mib=500.0):
    """rests: [{"minute", "rss_kib", ...}]. Pass if every resting RSS from `first_minute` on is
    within tol of the one at `first_minute`, and the peak VmRSS of the run <= peak_limit_mib."""
    rule = (f"resting RSS R(m): at the end of minute m the clients pause, and once nothing is in "
            f"flight the server rests, then VmRSS is read; pass if every R(m) for m >= "
            f"{first_minute} is within {tol:.0%} of R({first_minute}), and the peak VmRSS of "
            f"the run <= {peak_limit_mib:.0f} MiB")
    use = [r for r in rests if r["minute"] >= first_minute - 0.05 and r["rss_kib"] is not None]
    if len(use) < 3:
        return None, rule, {"note": f"fewer than 3 rests from minute {first_minute} on"}
    ref = use[0]["rss_kib"]
    worst = max(abs(r["rss_kib"] / ref - 1) for r in use)
    spread = max(r["rss_kib"] for r in use) / min(r["rss_kib"] for r in use) - 1
    ok = worst <= tol and peak_kib / 1024 <= peak_limit_mib
    return ok, rule, {"resting_mib": {str(r["minute"]): round(r["rss_kib"] / 1024, 1) for r in use},
                      "resting_max_deviation": worst, "resting_spread": spread,
                      "peak_mib": peak_kib / 1024, "peak_limit_mib": peak_limit_mib}


def memory_rule(samples, duration, warm_frac, warm_min, window, tol, peak_limit_mib=500.0):
    """samples: [(t seconds since load start, rss KiB)]. Returns (ok or None, text, numbers).

    Flat: the resting footprint, i.e. the lowest VmRSS of each whole minute after warm-up,
    stays within tol of the first such minute's (a leak raises that floor; the working memory
    of a few large photos analysed at once does not, and comes back down). Bounded: the peak
    over the whole run stays under peak_limit_mib. The earlier rule (max after warm-up within
    tol of the median of the first minute after warm-up) is reported as information: transient
    peaks of up to 2x the floor fail it without any growth (docs/reliability-results.md).
    """
    warm = max(warm_frac * duration, warm_min)
    rule = (f"warm-up W = max({warm_frac:.0%} of the run, {warm_min:.0f} s) = {warm:.0f} s; "
            f"floor F(m) = min VmRSS of whole minute m after W; pass if every F(m) is within "
            f"{tol:.0%} of the first F, and the peak VmRSS of the run <= {peak_limit_mib:.0f} MiB")
    base = [r for t, r in samples if warm <= t < warm + window]
    after = [r for t, r in samples if t >= warm]
    if not base or duration < warm + 2 * 60:
        return None, rule, {"warmup_s": warm, "note": "run too short for the memory rule"}
    b = statistics.median(base)
    mx = max(after)
    floors = {}
    for t, r in samples:
        if t >= warm and t < duration - (duration - warm) % 60:
            m = int((t - warm) // 60)
            floors[m] = min(floors.get(m, r), r)
    fl = [floors[m] for m in sorted(floors)]
    first = fl[0]
    worst = max(abs(f / first - 1) for f in fl)
    peak = max(r for _, r in samples)
    ok = worst <= tol and peak / 1024 <= peak_limit_mib
    nums = {"warmup_s": warm, "baseline_kib": b, "max_after_warmup_kib": mx,
            "ratio": mx / b, "limit_ratio": 1 + tol,
            "floors_mib": [round(f / 1024, 1) for f in fl],
            "floor_max_deviation": worst, "peak_mib": peak / 1024,
            "peak_limit_mib": peak_limit_mib}
    # Linear trend over [W, end], MiB per hour (information only).
    ts = [(t, r) for t, r in samples if t >= warm]
    if len(ts) >= 3:
        mt = statistics.mean(t for t, _ in ts)
        mr = statistics.mean(r for _, r in ts)
        den = sum((t - mt) ** 2 for t, _ in ts)
        if den > 0:
            slope = sum((t - mt) * (r - mr) for t, r in ts) / den
            nums["trend_mib_per_hour"] = slope * 3600 / 1024
    # Information only (not part of the rule): the floor and the middle of the last window,
    # which a leak raises but transient peaks (a few large images analysed at once) do not.
    last = [r for t, r in samples if t >= duration - window]
    if last:
        nums["last_window_median_ratio"] = statistics.median(last) / b
        nums["last_window_min_ratio"] = min(last) / b
    per_min = {}
    for t, r in samples:
        m = int(t // 60)
        per_min[m] = min(per_min.get(m, r), r)
    nums["per_minute_min_mib"] = [round(per_min[m] / 1024, 1) for m in sorted(per_min)]
    return ok, rule, nums


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--threads", type=int, default=16, help="client threads (default 16)")
    ap.add_argument("--workers", type=int, default=2, help="serve --workers (default 2)")
    ap.add_argument("--queue-depth", type=int, default=0,
                    help="serve --queue-depth (default 0: the server's default, 4 per worker)")
    ap.add_argument("--connections", choices=["keepalive", "fresh"], default="keepalive",
                    help="reuse connections (default, as real clients do) or open one per request")
    ap.add_argument("--busy-backoff", type=float, default=0.25,
                    help="a client that got busy waits this long (x0.5..1.5) before its next "
                         "request (default 0.25 s; 0 = none)")
    ap.add_argument("--rss-interval", type=float, default=5.0)
    ap.add_argument("--warmup-frac", type=float, default=0.2)
    ap.add_argument("--warmup-min", type=float, default=60.0)
    ap.add_argument("--baseline-window", type=float, default=60.0)
    ap.add_argument("--rss-tolerance", type=float, default=0.10)
    ap.add_argument("--rest-every", type=float, default=60.0,
                    help="seconds between rest windows (default 60; 0 = none, and the memory "
                         "check falls back to the floors under load)")
    ap.add_argument("--rest-seconds", type=float, default=10.0,
                    help="how long the server rests, idle, before its resting RSS is read "
                         "(default 10: jemalloc's decay returns freed pages within about that)")
    ap.add_argument("--rest-from-minute", type=int, default=2,
                    help="the first minute whose resting RSS counts (default 2)")
    ap.add_argument("--crops", type=int, default=400, help="UTKFace crops in the image pool")
    ap.add_argument("--photos", type=int, default=60, help="WIDER FACE photos in the image pool")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--json", dest="json_out", help="write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data, server log)")
    ap.add_argument("serve_extra", nargs="*", help="after --: extra `facelens serve` flags")
    a = ap.parse_args()

    binary = facelens_bin()
    evaldata = os.environ.get("FACELENS_EVALDATA") or os.path.join(REPO, "..", "shared", "evaldata")
    images = load_images(evaldata, a.crops, a.photos, a.seed)
    tmp = tempfile.mkdtemp(prefix="facelens-soak-")
    data_dir = os.path.join(tmp, "data")
    env = clean_env()
    max_body = int(env.get("FACELENS_MAX_BODY_BYTES", DEFAULT_MAX_BODY))
    results = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "binary": os.path.relpath(binary, REPO) if binary.startswith(REPO) else binary,
               "config": {"duration_s": a.duration, "threads": a.threads, "workers": a.workers,
                          "queue_depth": a.queue_depth, "images": len(images),
                          "max_body_bytes": max_body, "cpus": os.cpu_count()}}
    server = None
    try:
        main_id, main_key = create_key(binary, data_dir, env, "soak main", 1_000_000_000)
        zero_id, zero_key = create_key(binary, data_dir, env, "soak zero quota", 0)
        server = Server(binary, data_dir, os.path.join(tmp, "serve.log"),
                        ["--workers", str(a.workers)]
                        + (["--queue-depth", str(a.queue_depth)] if a.queue_depth > 0 else [])
                        + a.serve_extra, env)
        ready_s = server.wait_ready()
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        log(f"soak: setup failed: {e}")
        if server:
            server.stop()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        return 2
    results["config"].update({"workers": server.workers, "queue_depth": server.queue,
                              "backend": server.backend, "connections": a.connections,
                              "busy_backoff_s": a.busy_backoff})
    log(f"soak: server pid {server.pid} on 127.0.0.1:{server.port}, ready in {ready_s:.1f} s; "
        f"{a.threads} threads for {a.duration:.0f} s; backend {server.backend}, {server.workers} "
        f"workers, queue {server.queue}; connections {a.connections}; temp dir {tmp}")

    mix = Mix(images, {"main": main_key, "zero": zero_key}, max_body, a.seed)
    stats = Stats(mix)
    stop = threading.Event()
    a.pause = Pause()
    samples = []  # (t, rss KiB)
    procs = []  # (t, fds, threads)
    rests = []  # {"minute", "t", "rss_kib", "drain_s", "window": [t0, t1]}
    t_start = time.monotonic()

    def rest(at):
        """Pause the clients, wait until nothing is in flight, let the server rest, read its
        RSS, resume. The rest is labelled with the minute of load `at` seconds stands for."""
        t0 = time.monotonic() - t_start
        minute = round(at / 60, 1)
        a.pause.hold()
        give_up = time.monotonic() + REQUEST_TIMEOUT + 30
        while a.pause.inflight > 0 and time.monotonic() < give_up:
            time.sleep(0.05)
        idle = a.pause.inflight == 0
        t_idle = time.monotonic() - t_start
        time.sleep(a.rest_seconds)
        r = read_resting(server) if idle else None
        t1 = time.monotonic() - t_start
        a.pause.generation += 1
        a.pause.go.set()
        rests.append({"minute": minute, "t": round(t1, 1), "rss_kib": r,
                      "drain_s": round(t_idle - t0, 2), "window": [t0, t1]})

    def rester():
        k = 1
        while a.rest_every > 0:
            due = t_start + k * a.rest_every
            if due >= t_start + a.duration or stop.wait(max(0.0, due - time.monotonic())):
                return
            rest(k * a.rest_every)
            k += 1

    def sampler():
        while not stop.wait(0):
            t = time.monotonic() - t_start
            r = server.rss_kib()
            if r is not None:
                samples.append((t, r))
                pc = server.proc_counts()
                procs.append((t, pc.get("fds"), pc.get("threads")))
            nxt = t_start + (len(samples)) * a.rss_interval
            stop.wait(max(0.0, nxt - time.monotonic()))

    threads = [threading.Thread(target=client, args=(server.host, server.port, mix, stats, stop,
                                                     a.seed + i, a), daemon=True)
               for i in range(a.threads)]
    st = threading.Thread(target=sampler, daemon=True)
    st.start()
    rt = threading.Thread(target=rester, daemon=True)
    rt.start()
    for t in threads:
        t.start()
    last = 0
    while True:
        el = time.monotonic() - t_start
        if el >= a.duration:
            break
        time.sleep(min(5.0, a.duration - el))
        el = time.monotonic() - t_start
        if el - last >= 30 or el >= a.duration:
            last = el
            rss = samples[-1][1] / 1024 if samples else 0
            log(f"  {el:6.0f} s  {stats.n:7d} answers+errors  {stats.n / el:6.1f}/s  "
                f"RSS {rss:7.1f} MiB  unanswered {stats.n_errors}")
    stop.set()
    load_s = time.monotonic() - t_start
    for t in threads:
        t.join(REQUEST_TIMEOUT + 5)
    stuck = sum(t.is_alive() for t in threads)
    rt.join(REQUEST_TIMEOUT + a.rest_seconds + 40)
    if a.rest_every > 0 and not stuck:
        # The last minute's rest: the clients have stopped.
        rest(load_s)
    elapsed = time.monotonic() - t_start
    st.join(10)

    # End-of-run checks against the live server.
    hz_status, hz_body = get(server.host, server.port, "/healthz")
    rz_status, _ = get(server.host, server.port, "/readyz")
    final_counts = server.proc_counts()
    usage = {}
    usage_err = None
    try:
        usage["main"] = usage_by_code(binary, data_dir, env, main_id)
        usage["zero"] = usage_by_code(binary, data_dir, env, zero_id)
        usage["main_total_used"] = key_total_used(binary, data_dir, env, main_id)
    except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        usage_err = str(e)
    t_stop = time.monotonic()
    exit_code = server.stop(30)
    stop_s = time.monotonic() - t_stop

    # ---- evaluate
    checks = []

    def check(name, ok, detail):
        checks.append({"check": name, "result": "PASS" if ok else ("SKIP" if ok is None else "FAIL"),
                       "detail": detail})

    n_err = stats.n_errors
    cats = "; ".join(f"{c}: {v['count']} (e.g. {v['examples'][0]})"
                     for c, v in sorted(stats.err_categories.items(), key=lambda x: -x[1]["count"]))
    check("answered", n_err == 0 and stuck == 0,
          f"{stats.n} requests, {n_err} without a complete answer (connection error or no answer "
          f"in {REQUEST_TIMEOUT:.0f} s), {stuck} clients stuck" + (f"; {cats}" if n_err else ""))
    check("no-5xx", not stats.http5xx,
          f"HTTP statuses {dict(sorted(stats.statuses.items()))}"
          + (f"; 5xx: {stats.http5xx[:5]}" if stats.http5xx else ""))
    check("envelope", not stats.bad_envelope,
          "every body is {reason, result, error_code}" if not stats.bad_envelope
          else f"{len(stats.bad_envelope)} bad: {stats.bad_envelope[:3]}")
    check("codes", not stats.unexpected_code,
          "every kind answered with its documented code(s)" if not stats.unexpected_code
          else f"{len(stats.unexpected_code)} unexpected (kind, code): "
               f"{sorted(set(stats.unexpected_code))[:10]}")

    # Usage: what the store recorded per code vs what the clients saw.
    if usage_err:
        check("usage", False, f"could not read usage: {usage_err}")
    else:
        seen = {"main": {}, "zero": {}}
        unanswered = {"main": 0, "zero": 0}  # may or may not have reached the store
        for kind, codes in stats.by_kind.items():
            _, label, admitted, _, _ = mix.kinds[kind]
            if label is None or not admitted:
                continue
            for c, n in codes.items():
                if isinstance(c, int):
                    seen[label][c] = seen[label].get(c, 0) + n
                else:
                    unanswered[label] += n
        counted = seen["main"].get(0, 0) + seen["main"].get(200216, 0)
        diffs = []
        for label in ("main", "zero"):
            for c in sorted(set(seen[label]) | set(usage[label])):
                # Requests without an answer may have been recorded with any code: the store
                # must lie in [seen, seen + unanswered] (exact when every request was answered).
                # Busy is recorded only when the queue filled after the key check; a full queue
                # seen before the body is read is answered without any key lookup.
                lo = 0 if c == BUSY else seen[label].get(c, 0)
                hi = seen[label].get(c, 0) + unanswered[label]
                if not lo <= usage[label].get(c, 0) <= hi:
                    diffs.append(f"{label} key code {c}: clients saw {seen[label].get(c, 0)} "
                                 f"(+{unanswered[label]} unanswered), store {usage[label].get(c, 0)}")
        if not counted <= usage["main_total_used"] <= counted + unanswered["main"]:
            diffs.append(f"main key total_used {usage['main_total_used']} outside successes + "
                         f"no-face seen {counted} (+{unanswered['main']} unanswered)")
        check("usage", not diffs,
              f"main key: {counted} counted (total_used {usage['main_total_used']}); usage rows "
              f"match the answers code by code"
              + (f" within the {unanswered['main']} unanswered" if unanswered["main"] else "")
              if not diffs else "; ".join(diffs[:8]))
        results["usage"] = {"seen": {k: {str(c): n for c, n in v.items()} for k, v in seen.items()},
                            "store": {k: ({str(c): n for c, n in v.items()} if isinstance(v, dict)
                                          else v) for k, v in usage.items()}}

    # Floors under load: the samples outside the rest windows.
    in_rest = lambda t: any(w0 <= t <= w1 for w0, w1 in (r["window"] for r in rests))
    loaded = [(t, r) for t, r in samples if not in_rest(t)]
    ok_mem, rule, mem = memory_rule(loaded, load_s, a.warmup_frac, a.warmup_min,
                                    a.baseline_window, a.rss_tolerance)
    peak_kib = max((r for _, r in samples), default=0)
    ok_rest, rest_rule, rest_nums = resting_rule(rests, a.rss_tolerance, a.rest_from_minute,
                                                 peak_kib)
    mem["resting"] = {"rule": rest_rule, "rests": [{k: v for k, v in r.items() if k != "window"}
                                                   for r in rests], **rest_nums}
    if a.rest_every > 0:
        if ok_rest is None:
            check("memory", None, f"{rest_nums.get('note')} (RULE: {rest_rule})")
        else:
            check("memory", ok_rest,
                  f"resting RSS by minute {rest_nums['resting_mib']} MiB: largest deviation "
                  f"{rest_nums['resting_max_deviation']:.1%} from minute {a.rest_from_minute}'s "
                  f"(limit {a.rss_tolerance:.0%}), spread {rest_nums['resting_spread']:.1%}; peak "
                  f"{rest_nums['peak_mib']:.1f} MiB (limit {rest_nums['peak_limit_mib']:.0f}); "
                  f"information: floors under load {mem.get('floors_mib')} MiB (largest "
                  f"deviation {mem.get('floor_max_deviation', 0):.1%}). RULE: {rest_rule}")
    elif ok_mem is None:
        check("memory", None, f"{mem.get('note')} (RULE: {rule})")
    else:
        check("memory", ok_mem,
              f"floors after warm-up {mem['floors_mib']} MiB: largest deviation "
              f"{mem['floor_max_deviation']:.1%} (limit {a.rss_tolerance:.0%}); peak "
              f"{mem['peak_mib']:.1f} MiB (limit {mem['peak_limit_mib']:.0f}); information: "
              f"max after warm-up {mem['max_after_warmup_kib'] / 1024:.1f} MiB = "
              f"{mem['ratio']:.3f} x the median of the first minute after warm-up "
              f"{mem['baseline_kib'] / 1024:.1f} MiB; last {a.baseline_window:.0f} s: median "
              f"{mem.get('last_window_median_ratio', 0):.3f} x, min "
              f"{mem.get('last_window_min_ratio', 0):.3f} x baseline (information); per-minute "
              f"minimum MiB {mem['per_minute_min_mib']}. RULE: {rule}")
    hz_ok = False
    try:
        hz_ok = hz_status == 200 and json.loads(hz_body).get("status") == "ok"
    except ValueError:
        pass
    check("healthz", hz_ok and rz_status == 200,
          f"/healthz {hz_status} {hz_body[:60]!r}, /readyz {rz_status}")
    check("shutdown", exit_code == 0,
          f"SIGTERM: exit status {exit_code} after {stop_s:.1f} s" if exit_code is not None
          else "did not exit within 30 s of SIGTERM (killed)")

    # ---- report
    lat = stats.latency
    codes_total = {}
    for kind, codes in stats.by_kind.items():
        for c, n in codes.items():
            codes_total[c] = codes_total.get(c, 0) + n
    rss_all = [r for _, r in samples]
    # Throughput counts the time the clients could send (the rest windows inside the run out).
    rest_s = sum(min(r["window"][1], load_s) - r["window"][0] for r in rests
                 if r["window"][0] < load_s)
    sending_s = load_s - rest_s
    results.update({
        "load_seconds": round(load_s, 1),
        "rest_seconds": round(rest_s, 1),
        "requests": stats.n,
        "throughput_rps": round(stats.n / sending_s, 2) if sending_s > 0 else 0,
        "successes_per_s": round(codes_total.get(0, 0) / sending_s, 2) if sending_s > 0 else 0,
        "answers_by_code": {str(c): n for c, n in sorted(codes_total.items(), key=lambda x: str(x[0]))},
        "answers_by_kind": {k: {str(c): n for c, n in v.items()} for k, v in sorted(stats.by_kind.items())},
        "http_statuses": {str(k): v for k, v in stats.statuses.items()},
        "unanswered": stats.n_errors,
        "unanswered_by_category": stats.err_categories,
        "busy_answers_connection_header": stats.busy_headers,
        "latency_s": {"all": {f"p{p}": percentile(lat, p) for p in (50, 95, 99)},
                      "success": {f"p{p}": percentile(stats.latency_ok, p) for p in (50, 95, 99)},
                      "max": max(lat) if lat else None},
        "rss_mib": {"first": rss_all[0] / 1024 if rss_all else None,
                    "max": max(rss_all) / 1024 if rss_all else None,
                    "last": rss_all[-1] / 1024 if rss_all else None,
                    "hwm": final_counts.get("hwm_kib", 0) / 1024 or None},
        "rss_samples": [[round(t, 1), r] for t, r in samples],
        "fd_thread_samples": [[round(t, 1), f, th] for t, f, th in procs],
        "memory": {"rule": rule, **mem},
        "server_ready_s": round(ready_s, 2),
        "checks": checks,
        "passed": all(c["result"] != "FAIL" for c in checks),
    })

    print(f"\nFacelens soak: {load_s:.0f} s ({rest_s:.0f} s of it in rest windows), {a.threads} threads ({a.connections} connections, "
          f"busy back-off {a.busy_backoff} s), server: {server.workers} workers, queue "
          f"{server.queue}, backend {server.backend}; {os.cpu_count()} CPUs; binary {results['binary']}")
    print(f"requests {stats.n}  throughput {results['throughput_rps']}/s  "
          f"successes {codes_total.get(0, 0)} ({results['successes_per_s']}/s)")
    fmt = lambda x: "-" if x is None else f"{x * 1000:.0f} ms"
    print("latency all:     " + "  ".join(f"p{p} {fmt(percentile(lat, p))}" for p in (50, 95, 99)))
    print("latency success: " + "  ".join(f"p{p} {fmt(percentile(stats.latency_ok, p))}"
                                         for p in (50, 95, 99)))
    if rss_all:
        print(f"RSS first {rss_all[0] / 1024:.1f} MiB, max {max(rss_all) / 1024:.1f} MiB, "
              f"last {rss_all[-1] / 1024:.1f} MiB ({len(rss_all)} samples); "
              f"fds {procs[0][1]}->{procs[-1][1]}, threads {procs[0][2]}->{procs[-1][2]}")
    if stats.busy_headers:
        print(f"busy answers: {stats.busy_headers}")
    if stats.err_categories:
        print("requests without an answer:")
        for c, v in sorted(stats.err_categories.items(), key=lambda x: -x[1]["count"]):
            print(f"  {v['count']:8d}  {c}  (e.g. {v['examples'][0]})")
    print("\nanswers by code:")
    for c, n in sorted(codes_total.items(), key=lambda x: str(x[0])):
        print(f"  {str(c):>12}  {n:8d}")
    print("\nanswers by kind:")
    for k in mix.names:
        if k in stats.by_kind:
            d = stats.by_kind[k]
            print(f"  {k:<20} " + ", ".join(f"{c}: {n}" for c, n in sorted(d.items(), key=lambda x: str(x[0]))))
    print(f"\n{'check':<10} {'result':<6} detail")
    for c in checks:
        print(f"{c['check']:<10} {c['result']:<6} {c['detail']}")
    print("\nSOAK " + ("PASSED" if results["passed"] else "FAILED"))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if not results["passed"] or a.keep:
        log(f"soak: server log kept in {tmp}/serve.log")
    if not a.keep and results["passed"]:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
