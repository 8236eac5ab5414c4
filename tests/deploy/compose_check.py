#!/usr/bin/env python3
"""compose_check.py - what docker-compose.yml must say, read from compose's
own resolved view (`docker-compose config`: anchors and merges applied):

- Kafka keeps its log in a volume: KAFKA_LOG_DIRS is where a named volume
  is mounted (the apache/kafka image's default, /tmp/kraft-combined-logs,
  would leave the volume empty and lose every event with the container);
- `docker compose run drainctl` starts nothing else: drainctl has no
  depends_on (it inherited migrate and topics, which ran again each time);
  the same for the sip-passwd tool;
- the edges take calls from the load balancer: every edge service sets
  SIPDRAIN_TRUSTED_PEERS (the default, the edge's own host, would answer
  403 to every call through it), not to everything; and no network has an
  ipam block (Podman 4.3 + docker-compose 1.29 then refuse `run`);
- with deploy/compose.tls.yml on top, every edge serves a sips: URL next to
  its sip: one, and its certificate, key and CA are compose secrets read
  from files (never values in the environment);
- no password or DSN with credentials in the environment: each program's
  PostgreSQL DSN is the compose file secret of its own role, the owner's
  password postgres's POSTGRES_PASSWORD_FILE;
- Kafka knows who writes (issue #15): its client listener is SASL_SSL, no
  listener is PLAINTEXT, the StandardAuthorizer refuses what no ACL allows,
  and every program (and the topics step, which makes the ACLs) logs in
  with its own user's settings from a file secret (SIPDRAIN_KAFKA_PROPERTIES);
- with deploy/compose.two-sites.yml on top (issue #18): three Kafka nodes
  in racks site1 / site2 / witness, one quorum, one cluster id, a volume
  each, SASL_SSL between them, replication 3 / min.insync.replicas 2; every
  program on the three brokers; PostgreSQL pg-site1 and pg-site2 on their
  own volumes, every DSN the secret naming both servers.

Exit 0 when every check holds; otherwise each failure on stderr, exit 1.
"""
import ipaddress
import os
import subprocess
import sys

import yaml

here = sys.argv[1] if len(sys.argv) > 1 else "docker-compose.yml"
out = subprocess.run(["docker-compose", "-f", here, "config"], check=True,
                     capture_output=True, text=True).stdout
services = yaml.safe_load(out)["services"]
failures = []

kafka = services["kafka"]
log_dirs = (kafka.get("environment") or {}).get("KAFKA_LOG_DIRS")
mounts = {}
for v in kafka.get("volumes") or []:
    if isinstance(v, str):
        parts = v.split(":")
        mounts[parts[1]] = parts[0]
    else:
        mounts[v.get("target")] = v.get("source")
if not log_dirs:
    failures.append("kafka: KAFKA_LOG_DIRS is not set (the image logs to /tmp/kraft-combined-logs)")
else:
    for d in log_dirs.split(","):
        if d not in mounts:
            failures.append(f"kafka: log dir {d} is not a mounted volume ({sorted(mounts)})")

for tool in ("drainctl", "sip-passwd"):
    if services[tool].get("depends_on"):
        failures.append(f"{tool}: depends_on {services[tool]['depends_on']} "
                        "(compose run would start those again)")

# The edges' SIPDRAIN_TRUSTED_PEERS must be set: the default (this host)
# would refuse every call the load balancer sends. Compose cannot give lb a
# fixed address here: any ipam block makes Podman 4.3 + docker-compose 1.29
# refuse `docker compose run` ("IPAM option driver has changed"), so the
# edges trust the private ranges of the compose network.
for name, svc in services.items():
    if svc.get("command") != ["sip-edge"]:
        continue
    trusted = (svc.get("environment") or {}).get("SIPDRAIN_TRUSTED_PEERS")
    if not trusted:
        failures.append(f"{name}: SIPDRAIN_TRUSTED_PEERS unset: the load balancer's calls "
                        "would get 403 (the default trusts the edge's own host only)")
        continue
    nets = [ipaddress.ip_network(t.strip(), strict=False) for t in trusted.split(",") if t.strip()]
    if ipaddress.ip_network("0.0.0.0/0") in nets:
        failures.append(f"{name}: SIPDRAIN_TRUSTED_PEERS trusts every address")
if "networks" in yaml.safe_load(out) and any(
        (n or {}).get("ipam") for n in (yaml.safe_load(out).get("networks") or {}).values()):
    failures.append("networks: an ipam block breaks `docker compose run` under Podman 4.3")

# SIP over TLS: the override names the certificate files as secrets.
tls_file = os.path.join(os.path.dirname(os.path.abspath(here)), "deploy", "compose.tls.yml")
tls = yaml.safe_load(subprocess.run(["docker-compose", "-f", here, "-f", tls_file, "config"],
                                    check=True, capture_output=True, text=True).stdout)
declared = tls.get("secrets") or {}
for name, svc in tls["services"].items():
    if svc.get("command") != ["sip-edge"]:
        continue
    env = svc.get("environment") or {}
    urls = [u.strip() for u in env.get("SIPDRAIN_SIP_URL", "").split(",")]
    if not any(u.startswith("sips:") for u in urls) or not any(u.startswith("sip:") for u in urls):
        failures.append(f"{name} (TLS): SIPDRAIN_SIP_URL {env.get('SIPDRAIN_SIP_URL')!r} "
                        "is not a sip: and a sips: URL")
    mounted = {(s if isinstance(s, str) else s.get("source")) for s in svc.get("secrets") or []}
    for var in ("SIPDRAIN_TLS_CERT", "SIPDRAIN_TLS_KEY", "SIPDRAIN_TLS_CA"):
        path = env.get(var, "")
        secret = path[len("/run/secrets/"):] if path.startswith("/run/secrets/") else None
        if secret is None:
            failures.append(f"{name} (TLS): {var}={path!r} is not a secret under /run/secrets")
        elif secret not in mounted or "file" not in (declared.get(secret) or {}):
            failures.append(f"{name} (TLS): secret {secret} not mounted or not from a file")

# PostgreSQL (issue #15): no password in the file; each program reads its
# DSN from a compose secret (its own role's: deploy/secrets.sh), postgres its
# password too.
base = yaml.safe_load(out)
declared = base.get("secrets") or {}


def program_of(svc):
    """The program a service runs: its entrypoint (drainctl's, sip-passwd's),
    else its command."""
    return (svc.get("entrypoint") or svc.get("command") or [None])[0]


dsn_secret = {"sip-edge": "pg_edge_dsn", "agent-state": "pg_agent_state_dsn",
              "drain-orchestrator": "pg_orchestrator_dsn", "drainctl": "pg_drainctl_dsn",
              "sipdrain-passwd": "pg_passwd_dsn"}
for name, svc in base["services"].items():
    env = svc.get("environment") or {}
    mounted = {(s if isinstance(s, str) else s.get("source")) for s in svc.get("secrets") or []}
    for var, value in env.items():
        if "PASSWORD" in var and not var.endswith("_FILE"):
            failures.append(f"{name}: {var} is a password in the environment")
        if "DSN" in var and not var.endswith("_FILE"):
            failures.append(f"{name}: {var} is a DSN in the environment (use {var}_FILE)")
        if str(value).startswith("postgresql://") and "@" in str(value):
            failures.append(f"{name}: {var} holds credentials")
    program = program_of(svc)
    if program in dsn_secret:
        want = dsn_secret[program]
        if env.get("SIPDRAIN_PG_DSN_FILE") != f"/run/secrets/{want}" or want not in mounted \
                or "file" not in (declared.get(want) or {}):
            failures.append(f"{name}: its DSN is not the file secret {want}")
if base["services"]["postgres"].get("environment", {}).get("POSTGRES_PASSWORD_FILE") != \
        "/run/secrets/pg_owner_password":
    failures.append("postgres: POSTGRES_PASSWORD_FILE is not the secret pg_owner_password")

# Kafka (issue #15): authentication over TLS, an authorizer, one login each.
kenv = base["services"]["kafka"].get("environment") or {}
protocols = dict(p.split(":", 1) for p in kenv.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if ":" in p)
advertised = [a.split("://", 1)[0] for a in kenv.get("KAFKA_ADVERTISED_LISTENERS", "").split(",") if a]
for name in advertised:
    if protocols.get(name) != "SASL_SSL":
        failures.append(f"kafka: the client listener {name} is {protocols.get(name)}, not SASL_SSL")
for name, proto in protocols.items():
    if proto in ("PLAINTEXT", "SSL"):
        failures.append(f"kafka: listener {name} is {proto} (no authentication)")
if kenv.get("KAFKA_AUTHORIZER_CLASS_NAME") != "org.apache.kafka.metadata.authorizer.StandardAuthorizer":
    failures.append("kafka: no StandardAuthorizer (KAFKA_AUTHORIZER_CLASS_NAME)")
if str(kenv.get("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND", "")).lower() != "false":
    failures.append("kafka: KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND is not false")
kafka_login = {"sip-edge": "kafka_edge_properties", "agent-state": "kafka_agent_state_properties",
               "drain-orchestrator": "kafka_orchestrator_properties",
               "drainctl": "kafka_operator_properties", "sipdrain-kafka-init": "kafka_admin_properties"}
seen = set()
for name, svc in base["services"].items():
    program = program_of(svc)
    if program not in kafka_login:
        continue
    seen.add(program)
    env = svc.get("environment") or {}
    mounted = {(s if isinstance(s, str) else s.get("source")) for s in svc.get("secrets") or []}
    want = kafka_login[program]
    if env.get("SIPDRAIN_KAFKA_PROPERTIES") != f"/run/secrets/{want}" or want not in mounted \
            or "file" not in (declared.get(want) or {}) or "kafka_ca" not in mounted:
        failures.append(f"{name}: its Kafka login is not the file secret {want} (with kafka_ca)")
    # the admin's login: sipdrain-kafka-init's own, and drainctl's for
    # `stores --move-leaders` alone (SIPDRAIN_KAFKA_ADMIN_PROPERTIES)
    admin_ok = program in ("sipdrain-kafka-init", "drainctl")
    if "kafka_admin_properties" in mounted and not admin_ok:
        failures.append(f"{name}: it mounts the Kafka admin's login (kafka_admin_properties)")
    if program == "drainctl" and ("kafka_admin_properties" not in mounted or
                                  env.get("SIPDRAIN_KAFKA_ADMIN_PROPERTIES") != "/run/secrets/kafka_admin_properties"):
        failures.append(f"{name}: no admin login for stores --move-leaders (SIPDRAIN_KAFKA_ADMIN_PROPERTIES)")
for program in sorted(set(kafka_login) - seen):
    failures.append(f"no service runs {program}")

# The two-sites layout (issue #18): deploy/compose.two-sites.yml on top.
# Three Kafka nodes, one per rack (site1, site2, witness), each broker and
# controller with its log in its own volume, all three in the quorum, the
# same cluster id; topics made with replication 3 and min.insync.replicas
# 2; every program given the three brokers; two PostgreSQL servers named
# pg-site1 / pg-site2 (drainctl stores finds the site by cluster_name), each
# on a volume of its own; every DSN the secret naming both servers.
two_file = os.path.join(os.path.dirname(os.path.abspath(here)), "deploy", "compose.two-sites.yml")
two = yaml.safe_load(subprocess.run(["docker-compose", "-f", here, "-f", two_file, "config"],
                                    check=True, capture_output=True, text=True).stdout)
tsvc = two["services"]
nodes = {n: tsvc[n].get("environment") or {} for n in ("kafka", "kafka-site1", "kafka-witness")
         if n in tsvc}
if len(nodes) != 3:
    failures.append(f"two-sites: Kafka nodes {sorted(nodes)}, not kafka, kafka-site1, kafka-witness")
racks = {n: e.get("KAFKA_BROKER_RACK") for n, e in nodes.items()}
if sorted(str(r) for r in racks.values()) != ["site1", "site2", "witness"]:
    failures.append(f"two-sites: racks {racks}, not one each of site1, site2, witness")
voters = {e.get("KAFKA_CONTROLLER_QUORUM_VOTERS") for e in nodes.values()}
if len(voters) != 1 or any(f"@{n}:" not in str(next(iter(voters))) for n in nodes):
    failures.append(f"two-sites: the quorum voters differ or miss a node: {voters}")
if len({e.get("CLUSTER_ID") for e in nodes.values()}) != 1:
    failures.append("two-sites: the nodes do not share one CLUSTER_ID")
vols = set()
for n, e in nodes.items():
    mounts = {}
    for v in tsvc[n].get("volumes") or []:
        if isinstance(v, str):
            mounts[v.split(":")[1]] = v.split(":")[0]
        else:
            mounts[v.get("target")] = v.get("source")
    if e.get("KAFKA_LOG_DIRS") not in mounts:
        failures.append(f"two-sites: {n}: KAFKA_LOG_DIRS is not a mounted volume")
    else:
        vols.add(mounts[e["KAFKA_LOG_DIRS"]])
    protos = dict(p.split(":", 1) for p in e.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",") if ":" in p)
    if set(protos.values()) != {"SASL_SSL"}:
        failures.append(f"two-sites: {n}: listeners {protos} (want SASL_SSL for all, between sites too)")
    if str(e.get("KAFKA_MIN_INSYNC_REPLICAS")) != "2" or str(e.get("KAFKA_DEFAULT_REPLICATION_FACTOR")) != "3" \
            or str(e.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR")) != "3":
        failures.append(f"two-sites: {n}: not replication 3 / min.insync.replicas 2")
if len(vols) != len(nodes):
    failures.append(f"two-sites: the Kafka nodes share volumes {sorted(vols)}")
if str((tsvc["topics"].get("environment") or {}).get("SIPDRAIN_KAFKA_REPLICATION")) != "3":
    failures.append("two-sites: topics: SIPDRAIN_KAFKA_REPLICATION is not 3")
tdeclared = two.get("secrets") or {}
for name, svc in tsvc.items():
    program = program_of(svc)
    env = svc.get("environment") or {}
    if program in kafka_login:
        brokers = env.get("SIPDRAIN_KAFKA_BROKERS", "")
        if any(f"{n}:9092" not in brokers for n in nodes):
            failures.append(f"two-sites: {name}: SIPDRAIN_KAFKA_BROKERS {brokers!r} lacks a node")
    if env.get("SIPDRAIN_PG_DSN_FILE"):
        secret = env["SIPDRAIN_PG_DSN_FILE"][len("/run/secrets/"):]
        if not str((tdeclared.get(secret) or {}).get("file", "")).endswith("_two_sites"):
            failures.append(f"two-sites: {name}: its DSN secret {secret} is not the two-server one")
pgs = {n: svc for n, svc in tsvc.items() if str(svc.get("image", "")).startswith("postgres")}
names = sorted(a.split("=", 1)[1] for svc in pgs.values() for a in svc.get("command") or []
               if str(a).startswith("cluster_name="))
if names != ["pg-site1", "pg-site2"]:
    failures.append(f"two-sites: PostgreSQL cluster_names {names}, not pg-site1 and pg-site2")
if len({str(svc.get("volumes")) for svc in pgs.values()}) != 2:
    failures.append("two-sites: the two PostgreSQL servers share a volume")

for f in failures:
    print("compose_check: " + f, file=sys.stderr)
print("compose_check: " + ("ok" if not failures else f"{len(failures)} check(s) failed"))
sys.exit(1 if failures else 0)
