#!/usr/bin/env bash
# A container engine for the tests that run jobs in images (tests/local/test_containers.py, the CWL
# conformance run with containers): Debian's podman with runc, and what tests/engines.py builds the test
# images from offline (busybox-static, debootstrap), and a registry to serve them on loopback
# (docker-registry). No registry is reachable on CI machines.
#
# Best effort: when something cannot be installed, those tests skip and say why; the rest of the suite
# runs. What works on this machine kind is in docs/CONTAINERS.md.
set -u

missing=()
for tool in podman runc debootstrap docker-registry; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# The image needs a static busybox (the dynamic one would need the host's libc inside the image).
if ! { [ -x /bin/busybox ] && ldd /bin/busybox 2>&1 | grep -q "not a dynamic"; }; then
  missing+=(busybox-static)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing for the container tests: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/oscar-plugins-apt.log 2>&1 \
      || { apt-get update -q >>/tmp/oscar-plugins-apt.log 2>&1 \
           && apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/oscar-plugins-apt.log 2>&1; } \
      || echo "== could not install ${missing[*]} (see /tmp/oscar-plugins-apt.log): the container tests will skip"
  else
    echo "== ${missing[*]} missing and no root apt-get here: the container tests will skip"
  fi
fi

# crun (podman's default runtime) fails on hosts with hybrid cgroups, and the default rlimits are refused
# in unprivileged sandboxes; runc with cgroupfs runs containers on v1, hybrid and v2 alike. Only written
# when the machine has no system-wide configuration of its own.
conf=/etc/containers/containers.conf
if command -v podman >/dev/null 2>&1 && [ ! -e "$conf" ] && [ "$(id -u)" = 0 ]; then
  mkdir -p /etc/containers
  cat >"$conf" <<'CONF'
# Written by oscar-plugins' .ci/containers.sh (see docs/CONTAINERS.md).
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
  echo "== wrote $conf (runc, cgroupfs)"
fi
exit 0
