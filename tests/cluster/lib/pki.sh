# shellcheck shell=bash
# The test bed's PKI and kubeconfigs, made with openssl: one CA signs every serving and client
# certificate, so pods can verify the API server with the kube-root-ca.crt they are given.
# Sourced by tests/cluster/cluster; writes into $PKI.

# issue_cert NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt signed by the CA, valid for a year
# (a test bed lives for minutes).
issue_cert() {
  local name=$1 subject=$2 ext=$3
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" \
    -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

client_ext() {
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'
}

# kubeconfig NAME: NAME.kubeconfig for the client certificate NAME.crt, talking to the API
# server at the node's address (the same address pods and the host use).
kubeconfig() {
  local name=$1 file="$PKI/$1.kubeconfig"
  rm -f "$file"
  kubectl config set-cluster kask --kubeconfig="$file" --server="https://$NODE_IP:6443" \
    --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
  kubectl config set-credentials "$name" --kubeconfig="$file" --client-certificate="$PKI/$name.crt" \
    --client-key="$PKI/$name.key" --embed-certs=true >/dev/null
  kubectl config set-context kask --kubeconfig="$file" --cluster=kask --user="$name" >/dev/null
  kubectl config use-context kask --kubeconfig="$file" >/dev/null
}

# make_node_pki K: node K's kubelet identity (kubelet[-K]) and serving certificate
# (kubelet-serving[-K]), with its kubeconfig.
make_node_pki() {
  node_env "$1"
  local id="kubelet$NODE_SUFFIX"
  # The Node authorizer admits a kubelet only under the name system:node:<node name>.
  issue_cert "$id" "/O=system:nodes/CN=system:node:$NODE_K_NAME" "$(client_ext)"
  # The kubelet's serving certificate, so the API server can verify it at the node's address.
  issue_cert "kubelet-serving$NODE_SUFFIX" "/CN=$NODE_K_NAME" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$NODE_K_NAME,IP:$NODE_K_IP"
  kubeconfig "$id"
}

make_pki() {
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 365 -sha256 -subj "/CN=kask-testbed-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null

  # Every name and address a client may use: the Service IP (pods through kube-proxy), the
  # node address (host, kube-proxy's DNAT target) and loopback, plus the in-cluster DNS names
  # for clients that insist on them.
  issue_cert apiserver "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:$SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1"

  # RBAC's bootstrap policy binds these users and groups to their roles.
  issue_cert admin "/O=system:masters/CN=kask-admin" "$(client_ext)"
  issue_cert controller-manager "/CN=system:kube-controller-manager" "$(client_ext)"
  issue_cert scheduler "/CN=system:kube-scheduler" "$(client_ext)"
  issue_cert kube-proxy "/CN=system:kube-proxy" "$(client_ext)"
  # The API server's identity towards kubelets (logs, exec); bound to system:kubelet-api-admin
  # after start-up rather than made a cluster admin.
  issue_cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" "$(client_ext)"
  local k
  for ((k = 1; k <= $(node_count); k++)); do make_node_pki "$k"; done

  # The aggregation layer (APIServices such as Kueue's visibility API): the API server
  # proxies to extension servers as front-proxy-client, signed by a CA of its own that they
  # find in kube-system/extension-apiserver-authentication.
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI/front-proxy-ca.key" \
    -out "$PKI/front-proxy-ca.crt" -days 365 -sha256 -subj "/CN=kask-testbed-front-proxy-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/front-proxy-client.key" \
    -subj "/CN=front-proxy-client" -out "$PKI/front-proxy-client.csr" 2>/dev/null
  printf '%s\n' "$(client_ext)" >"$PKI/front-proxy-client.ext"
  openssl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" \
    -CAkey "$PKI/front-proxy-ca.key" -CAcreateserial -days 365 -sha256 \
    -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt" 2>/dev/null
  rm -f "$PKI/front-proxy-client.csr" "$PKI/front-proxy-client.ext" "$PKI/front-proxy-ca.srl"

  # Service-account tokens: the API server verifies with the public half, the token
  # controller signs with the private one.
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null

  local n
  for n in admin controller-manager scheduler kube-proxy; do kubeconfig "$n"; done
  rm -f "$PKI/ca.srl"
}
