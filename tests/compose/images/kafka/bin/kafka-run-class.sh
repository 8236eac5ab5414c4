#!/bin/bash
# kafka-run-class.sh CLASS [ARGS]: as Kafka's, without its many knobs
# (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS and
# KAFKA_LOG4J_OPTS are honoured). The tools' default JIT stops at C1: they
# start faster (the health check runs one every few seconds).
set -euo pipefail
cp="/opt/kafka/libs/*:/opt/kafka/tools-classes"
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:/opt/kafka/config/tools-log4j.properties}
# shellcheck disable=SC2086  # the *_OPTS are word lists
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} ${KAFKA_JVM_PERFORMANCE_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC} \
    ${KAFKA_OPTS:-} -Djava.awt.headless=true $log4j -cp "$cp" "$@"
