#!/bin/bash
# as Kafka's kafka-configs.sh (the stand-in image: tests/compose/images/kafka)
exec "$(dirname "$0")/kafka-run-class.sh" kafka.admin.ConfigCommand "$@"
