# shellcheck shell=bash
# pki.sh - a throw-away test PKI on the openssl CLI (EC P-256, SHA-256). Source it, then:
#   pki_ca DIR NAME             -> DIR/NAME.crt, DIR/NAME.key          (self-signed CA)
#   pki_server DIR CA NAME      -> DIR/NAME.crt, DIR/NAME.key          (SAN DNS:localhost,IP:127.0.0.1)
#   pki_client DIR CA CN [ROLE] -> DIR/CN.crt, DIR/CN.key              (subject CN=CN, clientAuth)
#     ROLE (sae, kme, device, bridge, or any word to test a bad marker) adds the role marker
#     subjectAltName URI:urn:qkd-kms:role:ROLE (docs/qkd-kmed.md "Roles"); none: no marker.
#   pki_client_uris DIR CA CN URI...  a client certificate whose SAN holds each URI given
# CA is the CA's base name inside DIR (as given to pki_ca). Keys are written mode 0600.
# Every function returns non-zero (and prints openssl's message) on failure.

_pki_key() { # FILE
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) ||
    { echo "pki: cannot create key $1" >&2; return 1; }
}

pki_ca() { # DIR NAME
  local dir=$1 name=$2
  mkdir -p "$dir" || return 1
  _pki_key "$dir/$name.key" || return 1
  openssl req -new -x509 -key "$dir/$name.key" -out "$dir/$name.crt" -days 30 -sha256 \
    -subj "/CN=$name" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>"$dir/.pki-err" ||
    { cat "$dir/.pki-err" >&2; return 1; }
  rm -f "$dir/.pki-err"
}

_pki_sign() { # DIR CA NAME SUBJ EXTFILE
  local dir=$1 ca=$2 name=$3 subj=$4 ext=$5
  _pki_key "$dir/$name.key" || return 1
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>"$dir/.pki-err" ||
    { cat "$dir/.pki-err" >&2; return 1; }
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
    -CAcreateserial -CAserial "$dir/$ca.srl" -out "$dir/$name.crt" -days 30 -sha256 \
    -extfile "$ext" >/dev/null 2>"$dir/.pki-err" || { cat "$dir/.pki-err" >&2; return 1; }
  rm -f "$dir/$name.csr" "$ext" "$dir/.pki-err"
}

pki_server() { # DIR CA NAME
  local dir=$1 ca=$2 name=$3 ext
  ext=$(mktemp "$dir/.ext.XXXXXX") || return 1
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$ext"
  _pki_sign "$dir" "$ca" "$name" "/CN=$name" "$ext"
}

pki_client() { # DIR CA CN [ROLE]
  local dir=$1 ca=$2 cn=$3
  if [ -n "${4:-}" ]; then
    pki_client_uris "$dir" "$ca" "$cn" "urn:qkd-kms:role:$4"
  else
    pki_client_uris "$dir" "$ca" "$cn"
  fi
}

pki_client_uris() { # DIR CA CN URI...
  local dir=$1 ca=$2 cn=$3 ext san="" u
  shift 3
  for u in "$@"; do san+="${san:+,}URI:$u"; done
  ext=$(mktemp "$dir/.ext.XXXXXX") || return 1
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" >"$ext"
  [ -z "$san" ] || printf 'subjectAltName=%s\n' "$san" >>"$ext"
  _pki_sign "$dir" "$ca" "$cn" "/CN=$cn" "$ext"
}
