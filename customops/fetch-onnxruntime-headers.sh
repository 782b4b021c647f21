#!/usr/bin/env bash
# Fetch the onnxruntime C/C++ API headers into a cache folder (default:
# third_party/onnxruntime-headers, git-ignored) for building the axonnx custom-op library.
#
# The library never links to libonnxruntime: onnxruntime hands it the API table at
# RegisterCustomOps time, so the headers are all the build needs.
#
# 1. Debian's libonnxruntime-dev (1.21, suite trixie), downloaded with `apt-get download`
#    against a temporary sources list naming the trixie suite of the Debian mirror this
#    machine already uses. apt runs with its own state, cache and etc folders, so the
#    system's apt state is never touched, and nothing is installed: the .deb is unpacked
#    with `dpkg -x`.
# 2. Otherwise the official onnxruntime GitHub release tarball, with curl.
#
# Usage: fetch-onnxruntime-headers.sh [DEST]   (prints the include folder on success)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEST="${1:-${HERE}/../third_party/onnxruntime-headers}"
ORT_VERSION="${AXONNX_ORT_HEADERS_VERSION:-1.21.0}"
SUITE=trixie
mkdir -p "${DEST}"
DEST="$(cd "${DEST}" && pwd)"
INCLUDE="${DEST}/include"

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

have_headers() { [[ -f "${INCLUDE}/onnxruntime_lite_custom_op.h" ]]; }
log() { echo "fetch-onnxruntime-headers: $*" >&2; }

if have_headers; then
    echo "${INCLUDE}"
    exit 0
fi

# The Debian mirror configured on this machine (deb822 .sources or one-line .list form).
debian_mirror() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && files+=("$f")
    done
    ((${#files[@]})) || return 1
    # deb822: a URIs: line in a stanza whose Suites: names a Debian release.
    awk '
        /^[[:space:]]*URIs:/ { uri = $2 }
        /^[[:space:]]*Suites:/ { if ($0 ~ /(bookworm|trixie|sid|bullseye|unstable|stable|testing)([[:space:]]|$)/ && uri !~ /security/) { print uri; exit } }
        /^[[:space:]]*deb[[:space:]]/ {
            i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i+1) ~ /^(bookworm|trixie|sid|bullseye|unstable|stable|testing)$/) { print $i; exit }
        }
    ' "${files[@]}" | head -n1
}

try_apt() {
    command -v apt-get >/dev/null && command -v dpkg >/dev/null || { log "no apt-get/dpkg"; return 1; }
    local mirror arch work="${WORK}/apt"
    mirror="$(debian_mirror)" || true
    [[ -n "${mirror}" ]] || { log "no Debian mirror found in /etc/apt"; return 1; }
    arch="$(dpkg --print-architecture)"
    mkdir -p "${work}"/{etc/apt/sources.list.d,etc/apt/preferences.d,etc/apt/apt.conf.d,state/lists/partial,cache/archives/partial,dl}
    touch "${work}/state/status"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local signed=""
    [[ -f "${keyring}" ]] && signed="[signed-by=${keyring}] "
    echo "deb ${signed}${mirror} ${SUITE} main" > "${work}/etc/apt/sources.list"
    local opts=(
        -o "Dir::Etc=${work}/etc/apt"
        -o "Dir::Etc::sourcelist=${work}/etc/apt/sources.list"
        -o "Dir::Etc::sourceparts=${work}/etc/apt/sources.list.d"
        -o "Dir::Etc::preferencesparts=${work}/etc/apt/preferences.d"
        -o "Dir::State=${work}/state"
        -o "Dir::State::status=${work}/state/status"
        -o "Dir::Cache=${work}/cache"
        -o "APT::Architecture=${arch}"
        -o "Debug::NoLocking=1"
    )
    # As root, apt would hand the download to the _apt user, who cannot write our temp dirs.
    [[ "${EUID}" -eq 0 ]] && opts+=(-o "APT::Sandbox::User=root")
    log "apt-get download libonnxruntime-dev from ${mirror} ${SUITE}"
    apt-get "${opts[@]}" -qq update >&2 || { log "apt-get update failed"; return 1; }
    (cd "${work}/dl" && apt-get "${opts[@]}" -qq download libonnxruntime-dev >&2) \
        || { log "apt-get download failed"; return 1; }
    local deb
    deb="$(ls "${work}"/dl/libonnxruntime-dev_*.deb | head -n1)"
    dpkg -x "${deb}" "${work}/x"
    local hdr
    hdr="$(dirname "$(find "${work}/x" -name onnxruntime_lite_custom_op.h | head -n1)")"
    [[ -f "${hdr}/onnxruntime_cxx_api.h" ]] || { log "the package holds no headers"; return 1; }
    mkdir -p "${INCLUDE}"
    cp -r "${hdr}"/. "${INCLUDE}/"
    basename "${deb}" > "${DEST}/SOURCE"
}

try_github() {
    command -v curl >/dev/null || { log "no curl"; return 1; }
    local work="${WORK}/github" url
    mkdir -p "${work}"
    url="https://github.com/microsoft/onnxruntime/releases/download/v${ORT_VERSION}/onnxruntime-linux-x64-${ORT_VERSION}.tgz"
    log "downloading ${url}"
    curl -fsSL --retry 3 -o "${work}/ort.tgz" "${url}" || { log "download failed"; return 1; }
    tar -xzf "${work}/ort.tgz" -C "${work}" --wildcards '*/include/*'
    local hdr
    hdr="$(dirname "$(find "${work}" -name onnxruntime_lite_custom_op.h | head -n1)")"
    [[ -f "${hdr}/onnxruntime_cxx_api.h" ]] || { log "the tarball holds no headers"; return 1; }
    mkdir -p "${INCLUDE}"
    cp -r "${hdr}"/. "${INCLUDE}/"
    echo "${url}" > "${DEST}/SOURCE"
}

if try_apt || try_github; then
    have_headers && { echo "${INCLUDE}"; exit 0; }
fi
log "could not fetch the onnxruntime headers; install libonnxruntime-dev or pass -DONNXRUNTIME_INCLUDE_DIR=<folder with onnxruntime_cxx_api.h>"
exit 1
