#!/usr/bin/env bash
# test-ca.sh DIR - a throw-away certificate authority and the certificates
# the TLS tests need, made with the openssl command line (P-256 keys, valid
# for 2 days):
#   ca.pem, ca.key          the test CA
#   edge.pem, edge.key      an edge's certificate, signed by the CA, for
#                           IP 127.0.0.1 and DNS localhost
#   other-ca.pem            another CA, which signed nothing of ours
#   expired.pem             edge.key's certificate, expired yesterday
#   wrong.key               a key that belongs to no certificate here
#   empty.pem               no certificate at all
# Never use these anywhere but a test: the keys are not protected.
set -euo pipefail
dir=${1:?usage: test-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=sipdrain test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
key edge.key
openssl req -new -key edge.key -out edge.csr -subj "/CN=localhost"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >ext
openssl x509 -req -in edge.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out edge.pem -days 2 \
  -extfile ext 2>/dev/null
openssl x509 -req -in edge.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out expired.pem \
  -days -1 -extfile ext 2>/dev/null
key other.key
openssl req -x509 -new -key other.key -out other-ca.pem -days 2 -subj "/CN=another CA"
key wrong.key
: >empty.pem
rm -f edge.csr ext ca.srl other.key
chmod 600 ./*.key
