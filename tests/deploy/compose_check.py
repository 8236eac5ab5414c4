#!/usr/bin/env python3
"""compose_check.py - what docker-compose.yml must say, read from compose's
own resolved view (`docker-compose config`: anchors and merges applied):

- Kafka keeps its log in a volume: KAFKA_LOG_DIRS is where a named volume
  is mounted (the apache/kafka image's default, /tmp/kraft-combined-logs,
  would leave the volume empty and lose every event with the container);
- `docker compose run drainctl` starts nothing else: drainctl has no
  depends_on (it inherited migrate and topics, which ran again each time);
  the same for the sip-passwd tool;
- the edges take calls from the load balancer: its fixed address is inside
  every edge service's SIPDRAIN_TRUSTED_PEERS (else every call through it
  gets 403), and outside the range the engine hands out to containers
  (else one started earlier may hold it, and lb does not start).

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

lb_nets = services["lb"].get("networks") or {}
lb_ip = next((n.get("ipv4_address") for n in lb_nets.values() if n and n.get("ipv4_address")),
             None)
if lb_ip is None:
    failures.append("lb: no fixed ipv4_address (the edges' SIPDRAIN_TRUSTED_PEERS needs one)")
# lb's fixed address: inside the network's subnet, outside the range the
# engine hands out (else a container started before lb may take it)
doc = yaml.safe_load(out)
for pool in (((doc.get("networks") or {}).get("default") or {}).get("ipam") or {}).get("config") or []:
    if lb_ip is None:
        break
    ip = ipaddress.ip_address(lb_ip)
    if "subnet" in pool and ip not in ipaddress.ip_network(pool["subnet"]):
        failures.append(f"lb: {lb_ip} is outside the subnet {pool['subnet']}")
    if "ip_range" not in pool:
        failures.append("networks.default: no ip_range: the engine may give lb's address away")
    elif ip in ipaddress.ip_network(pool["ip_range"]):
        failures.append(f"lb: {lb_ip} is inside ip_range {pool['ip_range']}: "
                        "another container may take it first")
for name, svc in services.items():
    if svc.get("command") != ["sip-edge"]:
        continue
    trusted = (svc.get("environment") or {}).get("SIPDRAIN_TRUSTED_PEERS", "127.0.0.0/8,::1")
    nets = [ipaddress.ip_network(t.strip(), strict=False) for t in trusted.split(",") if t.strip()]
    if lb_ip is not None and not any(ipaddress.ip_address(lb_ip) in n for n in nets):
        failures.append(f"{name}: SIPDRAIN_TRUSTED_PEERS {trusted} leaves out the load "
                        f"balancer ({lb_ip}): its calls would get 403")

for f in failures:
    print("compose_check: " + f, file=sys.stderr)
print("compose_check: " + ("ok" if not failures else f"{len(failures)} check(s) failed"))
sys.exit(1 if failures else 0)
