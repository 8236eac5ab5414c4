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
The stores over two zones and a witness (issue #18, stores-two-sites.yaml):
a Kafka node per zone (site1, site2, witness) with its zone as rack, one
quorum, replication 3 / min.insync.replicas 2, SASL_SSL everywhere; a
PostgreSQL server per site named pg-<zone>, one first primary, a fast
shutdown before SIGTERM.
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
# The stores over two zones and a witness (issue #18, stores-two-sites.yaml):
# each Kafka node and PostgreSQL server a StatefulSet pinned to its own zone;
# Kafka's rack is its zone, one quorum of the three, replication 3 and
# min.insync.replicas 2, SASL_SSL on every listener; PostgreSQL's
# cluster_name is pg-<zone> (drainctl stores finds the site by it), it stops
# with a fast shutdown (preStop) so the standby gets the final checkpoint.
sets = [d for d in yaml.safe_load_all(open(os.path.join(here, "stores-two-sites.yaml")))
        if d and d.get("kind") == "StatefulSet"]


def zone_of(doc):
    terms = doc["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    zones = [v for t in terms for e in t["matchExpressions"]
             if e["key"] == "topology.kubernetes.io/zone" for v in e["values"]]
    return zones[0] if len(zones) == 1 else None


kafka_sets = [d for d in sets if d["metadata"]["labels"].get("app") == "kafka"]
pg_sets = [d for d in sets if d["metadata"]["labels"].get("app") == "postgres"]
if sorted(zone_of(d) or "?" for d in kafka_sets) != ["site1", "site2", "witness"]:
    problems.append("stores-two-sites.yaml: not one Kafka node pinned to each of site1, site2, witness")
voters = set()
for d in kafka_sets:
    name = d["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    voters.add(env.get("KAFKA_CONTROLLER_QUORUM_VOTERS"))
    if env.get("KAFKA_BROKER_RACK") != zone_of(d):
        problems.append(f"stores-two-sites.yaml:{name}: rack {env.get('KAFKA_BROKER_RACK')} is not its zone")
    if env.get("KAFKA_MIN_INSYNC_REPLICAS") != "2" or env.get("KAFKA_DEFAULT_REPLICATION_FACTOR") != "3":
        problems.append(f"stores-two-sites.yaml:{name}: not replication 3 / min.insync.replicas 2")
    protos = {p.split(":")[1] for p in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",")}
    if protos != {"SASL_SSL"}:
        problems.append(f"stores-two-sites.yaml:{name}: a listener is not SASL_SSL ({protos})")
if len(voters) != 1 or any(f"@{d['metadata']['name']}-0." not in str(next(iter(voters)))
                           for d in kafka_sets):
    problems.append(f"stores-two-sites.yaml: the quorum voters differ or miss a node: {voters}")
if sorted(zone_of(d) or "?" for d in pg_sets) != ["site1", "site2"]:
    problems.append("stores-two-sites.yaml: not one PostgreSQL server pinned to each of site1, site2")
for d in pg_sets:
    name = d["metadata"]["name"]
    c = d["spec"]["template"]["spec"]["containers"][0]
    if f"cluster_name=pg-{zone_of(d)}" not in c.get("args", []):
        problems.append(f"stores-two-sites.yaml:{name}: cluster_name is not pg-{zone_of(d)}")
    stop = " ".join(c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", []))
    if "-m fast" not in stop:
        problems.append(f"stores-two-sites.yaml:{name}: no fast shutdown before SIGTERM (preStop)")
if sum(1 for d in pg_sets for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
       if e["name"] == "SIPDRAIN_PG_FIRST_PRIMARY" and e.get("value") == "yes") != 1:
    problems.append("stores-two-sites.yaml: not exactly one first primary")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
