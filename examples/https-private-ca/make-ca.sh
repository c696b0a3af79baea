#!/bin/sh
# A private certificate authority and server certificates signed by it, with
# openssl only:
#
#   make-ca.sh DIR NAME [SAN...]
#
# makes DIR/ca.pem and DIR/ca-key.pem (once: an existing CA is reused), then
# DIR/NAME.pem and DIR/NAME-key.pem, a server certificate for NAME and each
# SAN (DNS:... or IP:...), valid for DAYS (default 825) days.
#
#   make-ca.sh pki www.example.test DNS:www.example.test IP:10.0.0.11
#
# ca.pem goes to the director (the checker's ca_file) and to clients;
# ca-key.pem stays offline; NAME.pem and NAME-key.pem go to the real server.
# The lab test and lab/demo make their HTTPS real server's certificate with
# this script.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME [SAN...]" >&2; exit 2; }
dir=$1
name=$2
shift 2
days=${DAYS:-825}
mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.pem" ]; then
	# The CA: an EC P-256 key, self-signed, allowed to sign certificates only.
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 3650 \
		-subj "/CN=IPVS example private CA" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# The server's key and a request for its name.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$dir/$name-key.pem" -out "$dir/$name.csr" -subj "/CN=$name" 2>/dev/null

# Signed by the CA, with the names clients verify (subjectAltName: TLS
# clients ignore the CN) and the usage of a TLS server.
sans="DNS:$name"
for san in "$@"; do
	sans="$sans,$san"
done
printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$sans" >"$dir/$name.ext"
openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
	-CAcreateserial -out "$dir/$name.pem" -days "$days" -extfile "$dir/$name.ext" 2>/dev/null
rm -f "$dir/$name.csr" "$dir/$name.ext"
chmod 644 "$dir/ca.pem" "$dir/$name.pem"
echo "$dir/$name.pem (key $dir/$name-key.pem), signed by $dir/ca.pem"
