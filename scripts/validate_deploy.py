#!/usr/bin/env python3
"""Checks of deploy/ that need no Docker and no cluster (run by scripts/validate-deploy.sh).

Schemas say a file is well-formed; they cannot say that `FACELENS_WROKERS` is not a setting, that
the Dockerfile copies a binary the build does not make, or that a probe asks for a path the
server does not serve. Those cross-checks are here: the settings are read from the real binary
(`facelens serve --print-config`), and every environment block and the ConfigMap's TOML are
also *run through* that binary, so a value of the wrong type or one that fails validation is
caught the same way a replica would refuse it.

Usage: validate_deploy.py FACELENS_BIN   (from the repository root; yaml = PyYAML)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path.cwd()
DEPLOY = ROOT / "deploy"
# Variables read by `facelens` itself rather than by the settings table (docs/configuration.md).
CLI_VARIABLES = {"FACELENS_CONFIG", "FACELENS_BACKEND", "FACELENS_THREADS", "FACELENS_LOG"}

failures: list[str] = []
passed = 0


def check(ok: bool, what: str) -> None:
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)
        print(f"FAIL {what}")


def clean_env() -> dict[str, str]:
    """The environment without any FACELENS_ variable of the caller."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_")}


def print_config(binary: str, env: dict[str, str], config: Path | None = None) -> tuple[int, str]:
    args = [binary, "serve", "--print-config"]
    if config is not None:
        args += ["--config", str(config)]
    p = subprocess.run(args, env={**clean_env(), **env}, capture_output=True, text=True, timeout=120)
    return p.returncode, (p.stdout if p.returncode == 0 else p.stderr)


def placeholder(value: str) -> str:
    """Compose interpolation `${NAME:-default}` / `${NAME:?msg}` with a stand-in value."""

    def sub(m: re.Match[str]) -> str:
        body = m.group(1)
        if ":-" in body:
            return body.split(":-", 1)[1]
        return "placeholder"

    return re.sub(r"\$\{([^}]*)\}", sub, value)


def check_env_block(binary: str, settings: set[str], env: dict[str, str], where: str) -> None:
    for name in env:
        if name.startswith("FACELENS_"):
            check(
                name in CLI_VARIABLES or name[len("FACELENS_"):].lower() in settings,
                f"{where}: {name} is not a setting of facelens serve",
            )
    # Run the block through the binary: wrong types and invalid values fail as at start-up.
    runnable = {k: v for k, v in env.items() if k.startswith("FACELENS_") and k not in CLI_VARIABLES}
    code, out = print_config(binary, runnable)
    check(code == 0, f"{where}: facelens serve refuses this environment: {out.strip()}")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]

    # The settings, from the binary.
    code, out = print_config(binary, {})
    if code != 0:
        print(f"facelens serve --print-config failed: {out}")
        return 1
    defaults = json.loads(out)
    settings = set(defaults)
    check(len(settings) > 10 and "listen" in settings, "print-config lists the settings")

    server_src = "\n".join(p.read_text() for p in (ROOT / "crates/facelens-server/src").rglob("*.rs"))

    def served(path: str) -> bool:
        return f'"{path}"' in server_src

    # --- Dockerfile ---
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cargo = tomllib.loads((ROOT / "crates/facelens/Cargo.toml").read_text())
    bins = [b["name"] for b in cargo.get("bin", [])] or [cargo["package"]["name"]]
    m = re.search(r"cargo build --release --locked -p (\S+)", dockerfile)
    check(m is not None and m.group(1) == cargo["package"]["name"], "Dockerfile builds the facelens package")
    m = re.search(r"target/release/(\S+)", dockerfile)
    check(m is not None and m.group(1) in bins, f"Dockerfile copies a binary the build makes ({bins})")
    m = re.search(r"COPY --from=builder \S+ (\S+)", dockerfile)
    entry = re.search(r'ENTRYPOINT \["([^"]+)"', dockerfile)
    check(
        m is not None and entry is not None and m.group(1) == entry.group(1),
        "ENTRYPOINT is the binary copied into the runtime image",
    )
    check('CMD ["serve"]' in dockerfile, "CMD runs facelens serve")
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    need = tuple(int(x) for x in workspace["workspace"]["package"]["rust-version"].split("."))
    m = re.search(r"FROM rust:(\d+)\.(\d+)", dockerfile)
    check(m is not None and (int(m.group(1)), int(m.group(2))) >= need[:2], f"builder Rust >= rust-version {need}")
    env = dict(re.findall(r"(FACELENS_[A-Z0-9_]+)=(\S+)", dockerfile))
    check_env_block(binary, settings, env, "Dockerfile ENV")
    listen_port = env.get("FACELENS_LISTEN", "").rsplit(":", 1)[-1]
    check(f"EXPOSE {listen_port}" in dockerfile, "EXPOSE matches FACELENS_LISTEN's port")
    check(f"/dev/tcp/127.0.0.1/{listen_port}" in dockerfile and served("/healthz"), "HEALTHCHECK asks /healthz on the port")
    for path in ["crates", "models", "Cargo.toml", "Cargo.lock"]:
        check((ROOT / path).exists(), f"build context has {path}")
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for needed in ["crates", "models", "docs", "Cargo.toml", "Cargo.lock", "scripts"]:
        check(needed not in ignored, f".dockerignore keeps {needed} (the build embeds from it)")

    # --- compose ---
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = [n for n, s in services.items() if str(s.get("image", "")).startswith("facelens")]
    check(len(replicas) >= 3, f"compose runs at least three facelens replicas ({replicas})")
    for name in replicas:
        s = services[name]
        build = s.get("build", {})
        check((DEPLOY / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).is_file(), f"compose {name}: Dockerfile path")
        env = {k: placeholder(str(v)) for k, v in (s.get("environment") or {}).items()}
        check_env_block(binary, settings, env, f"compose {name}")
        check("FACELENS_DATABASE_URL" in env and "FACELENS_REDIS_URL" in env, f"compose {name} shares PostgreSQL and Redis")
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstream = re.findall(r"server (\S+):8080", nginx)
    check(sorted(upstream) == sorted(replicas), f"nginx balances over the replicas ({upstream})")
    nginx_volumes = services.get("nginx", {}).get("volumes", [])
    check(
        (DEPLOY / "nginx.conf").is_file() and "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx_volumes,
        "compose mounts nginx.conf",
    )

    # --- Kubernetes ---
    k8s = DEPLOY / "k8s"
    docs = {}
    for f in sorted(k8s.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs[(d["kind"], d["metadata"]["name"] if "metadata" in d else f.name)] = (f, d)
    kust = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    for r in kust["resources"]:
        check((k8s / r).is_file(), f"kustomization resource {r} exists")
    listed = set(kust["resources"]) | {"kustomization.yaml", "secret.example.yaml"}
    for f in k8s.glob("*.yaml"):
        check(f.name in listed, f"{f.name} is listed in kustomization.yaml")
    _, dep = docs[("Deployment", "facelens")]
    pod = dep["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "facelens"]
    check(container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz" and served("/readyz"), "readinessProbe is /readyz")
    check(container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz" and served("/healthz"), "livenessProbe is /healthz")
    check("limits" in container.get("resources", {}) and "requests" in container["resources"], "resources set")
    check(pod.get("securityContext", {}).get("runAsNonRoot") is True, "runs as non-root")
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e}
    check({"FACELENS_DATABASE_URL", "FACELENS_ADMIN_TOKEN"} <= set(secret_refs), "database URL and admin token come from a Secret")
    env = {e["name"]: e.get("value", "placeholder") for e in container.get("env", [])}
    env["FACELENS_DATABASE_URL"] = "postgres://u:p@db/x"
    env["FACELENS_ADMIN_TOKEN"] = "0123456789abcdef"
    check_env_block(binary, settings, env, "k8s Deployment env")
    _, secret = docs[("Secret", "facelens-secrets")]
    for ref in secret_refs.values():
        check(ref["name"] == "facelens-secrets" and ref["key"] in secret["stringData"], f"Secret example has {ref['key']}")
    # The ConfigMap's TOML: known keys, and accepted by the binary as a --config file.
    _, cm = docs[("ConfigMap", "facelens-config")]
    args = container.get("args", [])
    conf_path = args[args.index("--config") + 1] if "--config" in args else ""
    mounts = {v["mountPath"]: v["name"] for v in container.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod["volumes"]}
    mount_dir, conf_file = conf_path.rsplit("/", 1) if "/" in conf_path else ("", "")
    check(
        vols.get(mounts.get(mount_dir, ""), {}).get("configMap", {}).get("name") == "facelens-config"
        and conf_file in cm["data"],
        f"--config {conf_path} is the mounted ConfigMap key",
    )
    table = tomllib.loads(cm["data"].get(conf_file, ""))
    for key in table:
        check(key in settings, f"ConfigMap {conf_file}: {key} is a setting")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as t:
        t.write(cm["data"].get(conf_file, ""))
    code, out = print_config(binary, {}, Path(t.name))
    os.unlink(t.name)
    check(code == 0, f"ConfigMap {conf_file} is accepted by facelens serve --config: {out.strip()}")
    if code == 0:
        listen = json.loads(out)["listen"]
        check(listen.startswith("0.0.0.0:"), "the pods listen on every interface")
        port = int(listen.rsplit(":", 1)[1])
        ports = [p["containerPort"] for p in container["ports"]]
        check(port in ports, f"containerPort {ports} is the listen port {port}")
    _, svc = docs[("Service", "facelens")]
    check(svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"], "Service selects the Deployment's pods")
    _, hpa = docs[("HorizontalPodAutoscaler", "facelens")]
    check(hpa["spec"]["scaleTargetRef"]["name"] == "facelens", "HPA scales the Deployment")
    redis_url = table.get("redis_url", "")
    m = re.match(r"redis://([^:/]+)", redis_url)
    check(m is None or ("Service", m.group(1)) in docs, f"redis_url host {redis_url} is a Service here")

    print(f"deploy cross-checks: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
