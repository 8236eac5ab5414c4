#!/bin/bash
# as Kafka's kafka-topics.sh (the stand-in image: tests/compose/images/kafka)
exec "$(dirname "$0")/kafka-run-class.sh" StandInTools topics "$@"
