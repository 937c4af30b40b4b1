# shellcheck shell=bash
# Worker identity without static keys, sourced by tests/e2e/run (which sets KASK, NS, PREFIX
# and WORK): MinIO's STS trusts the bed's service-account issuer (tests/cluster/cluster up sets
# it up), as AWS STS trusts an EKS cluster's for IRSA. A job with a service account and no
# storage Secret exchanges its pods' token for credentials (AssumeRoleWithWebIdentity) and
# reads and writes through them; the same job without the account has no token and fails,
# saying why.

# identity_job NAME JQ-EXPR: the groupby example, storage without the Secret, the pods told
# where their token is, which role to assume, and where MinIO's STS is (its TLS front, whose
# certificate the bed's CA signed: the pods trust that CA, from their token's volume).
identity_job() {
  job_json examples/groupby.yaml "$1" "out/$1" "del(.spec.storage.secretRef)
    | .spec.retries = 0 | .spec.workers = 2 | .spec.targetTaskBytes = 4096
    | $2
    | .spec.podTemplate = {env: [
        {name: \"AWS_WEB_IDENTITY_TOKEN_FILE\", value: \"/var/run/secrets/kubernetes.io/serviceaccount/token\"},
        {name: \"AWS_ROLE_ARN\", value: \"$KASK_MINIO_ROLE_ARN\"},
        {name: \"AWS_ENDPOINT_URL_STS\", value: \"$KASK_MINIO_STS_ENDPOINT\"},
        {name: \"SSL_CERT_FILE\", value: \"/var/run/secrets/kubernetes.io/serviceaccount/ca.crt\"}]}"
}

name="a job with a service account and no Secret reads and writes through MinIO's STS (web identity)"
if [[ -z "${KASK_MINIO_ROLE_ARN:-}" || -z "${KASK_MINIO_STS_ENDPOINT:-}" ]]; then
  fail "$name" "the bed's MinIO has no OpenID provider or STS front (KASK_MINIO_ROLE_ARN, KASK_MINIO_STS_ENDPOINT)"
else
  kubectl --namespace "$NS" create serviceaccount lake-identity >/dev/null
  json=$(identity_job identity '.spec.serviceAccountName = "lake-identity"')
  kubectl apply -f - <<<"$json" >/dev/null
  if wait_phase identity 180 'Succeeded|Failed' && [[ "$(dj_field identity '{.status.phase}')" == Succeeded ]]; then
    secrets=$(kubectl --namespace "$NS" get jobs -l kask.dev/job=identity -o json |
      jq '[.items[].spec.template.spec.containers[].env[]? | select(.valueFrom.secretKeyRef)] | length')
    if ! run_locally "$json" identity 2>"$WORK/identity.err"; then
      fail "$name" "kask run failed: $(tail -n 3 "$WORK/identity.err")"
    elif [[ "$secrets" == 0 ]] && [[ "$(output_rows out/identity)" == "$(output_rows local/identity)" ]] &&
      [[ -n "$(output_rows out/identity)" ]]; then
      ok "$name ($(output_rows out/identity | wc -l) rows, as kask run's)"
    else
      fail "$name" "$secrets variables from Secrets; rows differ from kask run's"
    fi
  else
    fail "$name" "not Complete: $(dj_field identity '{.status.phase}'): $(dj_field identity '{.status.message}')"
  fi

  name="the same job without a service account has no token, and fails saying so"
  kubectl apply -f - <<<"$(identity_job no-identity '.')" >/dev/null
  if wait_phase no-identity 180 Failed; then
    message=$(dj_field no-identity '{.status.message}')
    if [[ "$message" == *token* ]]; then
      ok "$name"
    else
      fail "$name" "message: $message"
    fi
  else
    fail "$name" "phase $(dj_field no-identity '{.status.phase}'), want Failed"
  fi
fi
