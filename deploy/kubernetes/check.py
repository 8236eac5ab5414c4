#!/usr/bin/env python3
"""deploy/kubernetes/check.py - what the edges' manifests must promise
(issue #6), checked as data: every container of every Deployment runs a
sipdrain binary as PID 1 (SIGTERM reaches it); edges are ready on /readyz
only, and their termination grace period covers the BYE timeout and more.
PostgreSQL (issue #15): no container has a DSN or password as a literal
value (each from a Secret); a Job runs the migrations and sets the program
roles' passwords (sipdrain-migrate --role-passwords).
Kafka (issue #15): every program logs in as its own user, from a file
(SIPDRAIN_KAFKA_PROPERTIES) that a Secret volume mounts with that
program's key alone; a Job makes the topics and ACLs (sipdrain-kafka-init).
Exit 0 when every rule holds; otherwise one line per broken rule."""
import glob
import os
import sys

import yaml

here = os.path.dirname(os.path.abspath(__file__))
problems = []
edges = 0
for path in sorted(glob.glob(os.path.join(here, "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != "Deployment":
            continue
        name = f"{os.path.basename(path)}:{doc['metadata']['name']}"
        spec = doc["spec"]["template"]["spec"]
        for c in spec["containers"]:
            cmd = c.get("command", [])
            if not cmd or cmd[0] not in ("sip-edge", "agent-state", "drain-orchestrator"):
                problems.append(f"{name}: command must be the binary itself, not {cmd}")
            if cmd and cmd[0] == "sip-edge":
                edges += 1
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                timeout = int(env.get("SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT", "32"))
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace <= timeout + 60:
                    problems.append(f"{name}: terminationGracePeriodSeconds {grace} does not"
                                    f" cover the BYE timeout {timeout} s and the calls")
                probe = c.get("readinessProbe", {}).get("httpGet", {})
                if probe.get("path") != "/readyz":
                    problems.append(f"{name}: readinessProbe must GET /readyz")
                if "SIPDRAIN_HTTP_ADDR" not in env:
                    problems.append(f"{name}: SIPDRAIN_HTTP_ADDR unset: no /readyz")
if edges == 0:
    problems.append("no sip-edge Deployment found")
role_job = False
for path in sorted(glob.glob(os.path.join(here, "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") not in ("Deployment", "Job"):
            continue
        name = f"{os.path.basename(path)}:{doc['metadata']['name']}"
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                literal = str(e.get("value", ""))
                if ("DSN" in e["name"] or "PASSWORD" in e["name"]) and "value" in e \
                        and not e["name"].endswith("_FILE"):
                    problems.append(f"{name}: {e['name']} is a literal value, not from a Secret")
                if literal.startswith("postgresql://") and "@" in literal:
                    problems.append(f"{name}: {e['name']} holds credentials")
            if doc["kind"] == "Job" and "--role-passwords" in " ".join(c.get("args", [])):
                role_job = True
if not role_job:
    problems.append("no Job runs sipdrain-migrate --role-passwords")

# Kafka: the program's own key of the Secret, mounted where
# SIPDRAIN_KAFKA_PROPERTIES points; the ACLs from a Job.
kafka_key = {"sip-edge": "edge.properties", "agent-state": "agent-state.properties",
             "drain-orchestrator": "orchestrator.properties",
             "sipdrain-kafka-init": "admin.properties"}
kafka_job = False
for path in sorted(glob.glob(os.path.join(here, "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") not in ("Deployment", "Job"):
            continue
        name = f"{os.path.basename(path)}:{doc['metadata']['name']}"
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            program = (c.get("command") or [None])[0]
            if program not in kafka_key:
                continue
            if program == "sipdrain-kafka-init" and doc["kind"] == "Job":
                kafka_job = True
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            props = env.get("SIPDRAIN_KAFKA_PROPERTIES") or ""
            found = False
            for m in c.get("volumeMounts", []):
                secret = (volumes.get(m["name"]) or {}).get("secret")
                if not secret or not props.startswith(m["mountPath"].rstrip("/") + "/"):
                    continue
                rel = props[len(m["mountPath"].rstrip("/")) + 1:]
                items = secret.get("items") or []
                keys = {i["key"] for i in items}
                if any(i["path"] == rel and i["key"] == kafka_key[program] for i in items) \
                        and keys <= {kafka_key[program], "ca.crt"}:
                    found = True
            if not found:
                problems.append(f"{name}: SIPDRAIN_KAFKA_PROPERTIES is not its own key "
                                f"{kafka_key[program]} of a Secret mounted alone")
if not kafka_job:
    problems.append("no Job runs sipdrain-kafka-init (the topics and ACLs)")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
