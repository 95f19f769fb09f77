#!/bin/sh
# Regenerates the HTTPS probe fixtures (see README.md). Needs the openssl CLI.
set -eu
cd "$(dirname "$0")"
days=36500
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

# The cluster CA the prober trusts, and an unrelated CA it must reject.
for name in ca other-ca; do
    openssl req -x509 $ec -keyout "$name.key" -out "$name.pem" -days $days \
        -subj "/CN=kiln test $name" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
done

# The API server: IP SAN 127.0.0.1 (what the prober verifies by default) and one DNS
# name for the configured-server-name case. PKCS#8 key, as rustls loads it.
openssl req $ec -keyout server.key -out server.csr -subj "/CN=kiln test apiserver"
cat > server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:apiserver.kiln.test
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out server.pem -days $days -extfile server.ext
rm -f server.csr server.ext ca.srl other-ca.key ca.key
