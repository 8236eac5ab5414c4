#!/bin/bash
# as Kafka's kafka-console-producer.sh (the stand-in image: tests/compose/images/kafka)
exec "$(dirname "$0")/kafka-run-class.sh" kafka.tools.ConsoleProducer "$@"
