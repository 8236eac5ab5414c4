#!/usr/bin/env python3
"""compose_check.py - what docker-compose.yml must say, read from compose's
own resolved view (`docker-compose config`: anchors and merges applied):

- Kafka keeps its log in a volume: KAFKA_LOG_DIRS is where a named volume
  is mounted (the apache/kafka image's default, /tmp/kraft-combined-logs,
  would leave the volume empty and lose every event with the container);
- `docker compose run drainctl` starts nothing else: drainctl has no
  depends_on (it inherited migrate and topics, which ran again each time).

Exit 0 when every check holds; otherwise each failure on stderr, exit 1.
"""
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

if services["drainctl"].get("depends_on"):
    failures.append(f"drainctl: depends_on {services['drainctl']['depends_on']} "
                    "(compose run would start those again)")

for f in failures:
    print("compose_check: " + f, file=sys.stderr)
print("compose_check: " + ("ok" if not failures else f"{len(failures)} check(s) failed"))
sys.exit(1 if failures else 0)
