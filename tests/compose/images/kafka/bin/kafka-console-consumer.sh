#!/bin/bash
# as Kafka's kafka-console-consumer.sh (the stand-in image: tests/compose/images/kafka)
exec "$(dirname "$0")/kafka-run-class.sh" StandInTools console-consumer "$@"
