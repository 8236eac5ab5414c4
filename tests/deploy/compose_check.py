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
  ipam block (Podman 4.3 + docker-compose 1.29 then refuse `run`).

Exit 0 when every check holds; otherwise each failure on stderr, exit 1.
"""
import ipaddress
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

for f in failures:
    print("compose_check: " + f, file=sys.stderr)
print("compose_check: " + ("ok" if not failures else f"{len(failures)} check(s) failed"))
sys.exit(1 if failures else 0)
