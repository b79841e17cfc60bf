# virtnode: cloud-init's stages of a cold boot in ONE Python process, for the images virtnode builds, when virtnode
# boots them (their kernel with the flag `virtnode.cloud_init=one_process` on its command line: the image's units
# check it, so the same image booted by its boot loader, elsewhere, runs cloud-init's own units as always).
#
# virtnode-cloud-init.service starts this program where cloud-init-local.service would run (before the network
# is configured) and it runs the local stage. It then tells systemd it is ready (the boot goes on: ifupdown brings
# the NIC up from what the local stage wrote) and waits. The units that take the places of cloud-init.service
# (after networking.service, before sshd) and cloud-final.service (after multi-user.target), with their
# orderings, each ask this program over a FIFO for their stage and wait for its exit status: so every stage runs
# where cloud-init's own unit would, in this interpreter (started once, cloud-init imported once, its
# configuration parsed once: first_boot_common.py, shared with warm-first-boot.py). cloud-init writes its status
# and result files as at any boot, so `cloud-init status --wait --long` reads the same as after its own units.
import os
import socket
import sys

import first_boot_common as common

RUN = '/run/virtnode-cloud-init'
REQUEST = os.path.join(RUN, 'request')
# What each asking unit names, and the stages it runs (in order; a stage whose cloud-init unit the image masks is
# left out, as its unit would not run: virtnode's image masks cloud-config.service and runs its modules in final).
ASKED = {
    'network': ['init-network'],
    'final': ['modules-config', 'modules-final'],
}


def notify(state):
    """sd_notify(3) without libsystemd: one datagram to systemd's socket."""
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return
    if address.startswith('@'):
        address = '\0' + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(state.encode())


def stages_named(names):
    return [(name, args) for name, unit, args in common.STAGES if name in names and not common.masked(unit)]


def main():
    common.one_process()
    os.makedirs(RUN, mode=0o700, exist_ok=True)
    for fifo in [REQUEST] + [os.path.join(RUN, asked + '.done') for asked in ASKED]:
        if not os.path.exists(fifo):
            os.mkfifo(fifo, 0o600)
    failed = []
    local_code = common.run_stage(['init', '--local'], failed)
    notify('READY=1\nSTATUS=local stage done; waiting for the network stage')
    pending = dict(ASKED)
    while pending:
        with open(REQUEST) as f:
            asked = f.read().strip()
        if asked not in pending:
            print('virtnode-cloud-init: unknown or repeated request %r' % asked, file=sys.stderr)
            continue
        code = 0
        for name, args in stages_named(pending.pop(asked)):
            notify('STATUS=running cloud-init %s' % name)
            code = common.run_stage(args, failed) or code
        with open(os.path.join(RUN, asked + '.done'), 'w') as f:
            f.write('%d\n' % (1 if code else 0))
    notify('STATUS=cloud-init done' + ('; failed: ' + ', '.join(failed) if failed else ''))
    # Each asking unit fails with its own stage, as cloud-init's units do; this one with the local stage.
    return 1 if local_code else 0


if __name__ == '__main__':
    sys.exit(main())
