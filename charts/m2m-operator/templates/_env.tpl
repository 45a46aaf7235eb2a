{{/*
The operator's settings: one row per flag of `m2m-operator run` that the chart sets, in the
order of values.yaml. The Deployment's env is rendered from this table alone.

  env             the flag's environment variable
  value           the dotted path of the value in values.yaml that sets it; rendered by type:
                  a string as it is, a boolean as true/false, a number as an integer, a list
                  joined with commas, a map as key=value pairs joined with commas in key order
  template        instead of value: a helper of this chart that renders the variable's value
  unsetWhenEmpty  true: no variable at all while the value is empty ("", 0, [], {}), so the
                  operator's own default applies; otherwise the variable is always set

Adding a flag: its value in values.yaml (with a comment), one row here, its type in
values.schema.json and its row in README.md, and set it in ci/all-on-values.yaml if the row is
unsetWhenEmpty. `hack/chart.sh check` fails while a flag of src/config.rs has no row, a row names
no flag, or a value is missing from the README; rendering fails on a row whose value is not in
values.yaml.

Not in the table: M2M_NAMESPACE (the release namespace) and M2M_POD_NAME (the downward API),
written in templates/deployment.yaml.
*/}}
{{- define "m2m-operator.envTable" -}}
- {env: M2M_ISSUER, template: m2m-operator.issuer}
- {env: M2M_TOKEN_URL, value: tokenUrl, unsetWhenEmpty: true}
- {env: M2M_RESYNC, value: resync}
- {env: M2M_LOG_FORMAT, value: logging.format}
- {env: RUST_LOG, value: logging.level}
- {env: M2M_LEADER_ELECTION, value: leaderElection.enabled}
- {env: M2M_LEASE_NAME, value: leaderElection.leaseName}
- {env: M2M_LEASE_DURATION, value: leaderElection.leaseDuration}
- {env: M2M_LEASE_RENEW_BEFORE, value: leaderElection.renewBefore}
- {env: M2M_SIGNING_ALGORITHM, value: signingKeys.algorithm}
- {env: M2M_SIGNING_KEY_ROTATION, value: signingKeys.rotation}
- {env: M2M_SIGNING_KEY_PUBLISH_AHEAD, value: signingKeys.publishAhead}
- {env: M2M_SIGNING_KEY_RETENTION, value: signingKeys.retention}
- {env: M2M_UNSAFE_KEY_TIMINGS, value: signingKeys.unsafeTimings}
- {env: M2M_MAX_CONCURRENT_REQUESTS, value: limits.maxConcurrentRequests}
- {env: M2M_REQUEST_TIMEOUT, value: limits.requestTimeout}
- {env: M2M_ARGON2_WORKERS, value: limits.argon2Workers, unsetWhenEmpty: true}
- {env: M2M_ARGON2_MAX_IN_FLIGHT, value: limits.argon2MaxInFlight}
- {env: M2M_MAX_FAILURES_PER_CLIENT, value: throttling.maxFailuresPerClient}
- {env: M2M_MAX_FAILURES_PER_SOURCE, value: throttling.maxFailuresPerSource}
- {env: M2M_FAILURE_WINDOW, value: throttling.window}
- {env: M2M_TRUSTED_PROXIES, value: throttling.trustedProxies, unsetWhenEmpty: true}
- {env: M2M_FORWARDED_HEADER, value: throttling.forwardedHeader}
- {env: M2M_SERVICE_ACCOUNT_TOKEN_MAX_LIFETIME, value: serviceAccountTokens.maxLifetime}
- {env: M2M_TOKEN_REVIEW_TTL, value: serviceAccountTokens.reviewTtl}
- {env: M2M_TOKEN_ADDR, template: m2m-operator.tokenAddr}
- {env: M2M_ADMIN_ADDR, template: m2m-operator.adminAddr}
- {env: M2M_HEADER_READ_TIMEOUT, value: listener.headerReadTimeout}
- {env: M2M_IDLE_TIMEOUT, value: listener.idleTimeout}
- {env: M2M_MAX_CONNECTIONS, value: listener.maxConnections}
- {env: M2M_SHUTDOWN_DELAY, value: listener.shutdownDelay}
- {env: M2M_TLS_CERT_FILE, template: m2m-operator.tlsCertFile, unsetWhenEmpty: true}
- {env: M2M_TLS_KEY_FILE, template: m2m-operator.tlsKeyFile, unsetWhenEmpty: true}
- {env: M2M_GLOBAL_APP_NAMESPACES, value: globalApps.namespaces, unsetWhenEmpty: true}
- {env: M2M_GLOBAL_APP_NAMESPACE_LABELS, value: globalApps.namespaceLabels, unsetWhenEmpty: true}
- {env: M2M_SECRET_TEMPLATE_ALLOWED_KEYS, value: secretTemplate.allowedKeys}
- {env: M2M_QUOTA_SERVICE, template: m2m-operator.fullname}
- {env: M2M_USAGE_REPORT_INTERVAL, value: usageReports.interval}
{{- end }}

{{/* The env entries (EnvVar list) of the table's rows. */}}
{{- define "m2m-operator.env" -}}
{{- $root := . }}
{{- range $row := include "m2m-operator.envTable" . | fromYamlArray }}
{{- $raw := $root.Values }}
{{- if $row.template }}
{{- $raw = include $row.template $root }}
{{- else }}
{{- range $key := splitList "." $row.value }}
{{- if not (and (kindIs "map" $raw) (hasKey $raw $key)) }}
{{- fail (printf "templates/_env.tpl: %s names the value %s, which values.yaml does not have" $row.env $row.value) }}
{{- end }}
{{- $raw = index $raw $key }}
{{- end }}
{{- end }}
{{- if not (and $row.unsetWhenEmpty (empty $raw)) }}
- name: {{ $row.env }}
  value: {{ include "m2m-operator.envValue" (dict "value" $raw) | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* A value as the text of an environment variable (see the table's comment). */}}
{{- define "m2m-operator.envValue" -}}
{{- $v := .value }}
{{- if kindIs "slice" $v }}
{{- join "," $v }}
{{- else if kindIs "map" $v }}
{{- include "m2m-operator.labelPairs" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) }}
{{- $v | int }}
{{- else }}
{{- $v }}
{{- end }}
{{- end }}

{{/* A map as key=value pairs joined by commas, in key order (M2M_GLOBAL_APP_NAMESPACE_LABELS). */}}
{{- define "m2m-operator.labelPairs" -}}
{{- $pairs := list }}
{{- range $k, $v := . }}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* host:port of the token and admin listeners; IPv6 hosts are written in brackets ("[::]"). */}}
{{- define "m2m-operator.tokenAddr" -}}
{{- printf "%s:%d" .Values.listener.bindAddress (int .Values.listener.tokenPort) }}
{{- end }}
{{- define "m2m-operator.adminAddr" -}}
{{- printf "%s:%d" .Values.listener.bindAddress (int .Values.listener.adminPort) }}
{{- end }}

{{/* The token listener's certificate and key files, mounted from tls.secretName; empty without TLS. */}}
{{- define "m2m-operator.tlsCertFile" -}}
{{- if .Values.tls.enabled }}{{ include "m2m-operator.tlsDir" . }}/tls.crt{{ end }}
{{- end }}
{{- define "m2m-operator.tlsKeyFile" -}}
{{- if .Values.tls.enabled }}{{ include "m2m-operator.tlsDir" . }}/tls.key{{ end }}
{{- end }}
