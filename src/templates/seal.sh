#!/bin/sh
# Seals a Linux root filesystem so that every clone of it gets its own identity: run by virtnode inside the
# guest through qemu-guest-agent (ROOT=/, the guest then powers off) or in the sealing appliance with the disk
# mounted at ROOT. POSIX sh (busybox ash and dash). One line per change on stdout, then SEAL-OK.
# Usage: seal.sh ROOT live|offline
set -u
ROOT=${1:?usage: seal.sh ROOT live|offline}
MODE=${2:?usage: seal.sh ROOT live|offline}
R=${ROOT%/}

say() { echo "$*"; }

# remove PATH...: each existing path (file, link or directory) removed, one line each; globs that match nothing are skipped.
remove() {
  for p in "$@"; do
    if [ -e "$p" ] || [ -L "$p" ]; then
      rm -rf -- "$p" && say "removed ${p#"$R"}"
    fi
  done
}

# Empty, not removed: systemd fills an empty /etc/machine-id at the next boot (and treats it as a first boot).
if [ -d "$R/etc" ]; then
  [ -e "$R/etc/machine-id" ] && [ ! -s "$R/etc/machine-id" ] || say "emptied /etc/machine-id"
  rm -f -- "$R/etc/machine-id"
  : >"$R/etc/machine-id"
  chmod 0444 "$R/etc/machine-id"
fi
remove "$R/var/lib/dbus/machine-id"
remove "$R"/etc/ssh/ssh_host_*
# cloud-init clean --logs: a new instance-id then runs every per-instance module again.
remove "$R/var/lib/cloud/instances" "$R/var/lib/cloud/instance" "$R/var/lib/cloud/data" "$R/var/lib/cloud/sem"
# The NoCloud seed a warm launch (nocloud) or a container (nocloud-net) got on its disk: the instance's own
# meta-data, user-data and SSH host private keys. Kept, cloud-init would find it at the next boot of every clone
# and give each the old instance's identity.
remove "$R/var/lib/cloud/seed/nocloud" "$R/var/lib/cloud/seed/nocloud-net"
# DHCP leases (dhclient, dhcpcd, NetworkManager, systemd-networkd) and persistent NIC names bound to old MACs.
remove "$R"/var/lib/dhcp/* "$R"/var/lib/dhclient/* "$R"/var/lib/dhcpcd/* "$R"/var/lib/NetworkManager/* "$R"/var/lib/systemd/network/*
remove "$R"/etc/udev/rules.d/70-persistent-*.rules "$R/var/lib/systemd/random-seed"
if [ "$MODE" = offline ]; then
  # /run is a tmpfs while the guest runs; on the disk it should be empty.
  remove "$R"/run/* "$R"/run/.[!.]*
fi
# Logs: the journal's per-machine directories removed (named by the old machine-id), rotated logs removed, the
# others emptied so their owners and modes stay. In the running guest (ROOT=/) journald would notice its file was
# deleted and start a new one there within seconds, so it is first told to write to /run (a tmpfs) until power-off.
if [ "$MODE" = live ] && [ -z "$R" ] && command -v journalctl >/dev/null 2>&1; then
  journalctl --relinquish-var >/dev/null 2>&1 || true
fi
remove "$R"/var/log/journal/*
if [ -d "$R/var/log" ]; then
  find "$R/var/log" -type f 2>/dev/null | while IFS= read -r f; do
    case "$f" in
    *.journal | *.journal~ | *.gz | *.xz | *.[0-9] | *.old) remove "$f" ;;
    *) if [ -s "$f" ]; then : >"$f" && say "emptied ${f#"$R"}"; fi ;;
    esac
  done
fi
for home in "$R/root" "$R"/home/*; do
  [ -d "$home" ] || continue
  remove "$home/.bash_history" "$home/.ash_history" "$home/.sh_history" "$home/.zsh_history" "$home/.python_history" \
    "$home/.lesshst" "$home/.viminfo" "$home/.mysql_history" "$home/.wget-hsts"
done
remove "$R"/tmp/* "$R"/tmp/.[!.]* "$R"/var/tmp/* "$R"/var/tmp/.[!.]*
sync
say SEAL-OK
