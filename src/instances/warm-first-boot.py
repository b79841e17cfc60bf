# virtnode: the first boot of a warm launch. `template create --warm` starts this program (a transient systemd
# service) in the template's one warm boot: it imports cloud-init's code, says it is ready, and blocks on a FIFO;
# the guest's memory is saved right then. Each warm launch loads that memory and gives its job through the guest
# agent (job.json, then the FIFO opened to wake this): machineId, entropy (hex, from the host), seed (NoCloud file
# name -> text). It then does
# what a cold first boot does for a new instance: a fresh machine-id, fresh random state, then cloud-init's stages
# in this interpreter (its code is loaded already): the ones the image's systemd would run at a boot (local,
# network, config, final; not a stage whose unit the image masks, as virtnode's image masks cloud-config.service
# and runs those modules in final), the NIC brought up by ifupdown between the local and the network stage as
# networking.service would, and writes a JSON report into report.json: cloud-init's own
# verdict (what `cloud-init status --long` prints, so the host needs no SSH round trip for it), how long each step
# took and cloud-init's slowest modules of this boot (its own events' timings, which `cloud-init analyze blame`
# reads back from its log: here they are taken as cloud-init reports them, with no log to parse at the end).
import json
import os
import random
import subprocess
import tempfile
import threading
import time
import traceback

import copy
import gc

from cloudinit.reporting import instantiated_handler_registry

# Shared with the cold first boot of virtnode's images (cold-first-boot.py): the configuration parsed once, the
# output redirected once, commands timed, the network tables left out, the container question asked once.
import first_boot_common as common
from first_boot_common import STAGES, event_timings, masked, slowest, verdict

common.preload_modules()
common.one_process()

RUN = '/run/virtnode-warm'
os.makedirs(RUN, mode=0o700, exist_ok=True)
if not os.path.exists(os.path.join(RUN, 'job')):
    os.mkfifo(os.path.join(RUN, 'job'), 0o600)
# Everything loaded so far lives as long as this program: the garbage collector need not walk it again at every
# full collection during the stages (under TCG each walk of cloud-init's objects costs the guest time).
gc.collect()
gc.freeze()
open(os.path.join(RUN, 'ready'), 'w').close()

# ---- the memory is saved while this waits; everything below runs in a warm-launched instance ----
# The host writes the job into job.json with the guest agent's file commands, then opens the FIFO to wake this
# program: no process is started in the guest for it (each costs a fraction of a second under TCG). The FIFO is
# only the wake-up; should a job be written into it whole, that is taken instead.
with open(os.path.join(RUN, 'job')) as f:
    text = f.read()
if not text.strip():
    with open(os.path.join(RUN, 'job.json')) as f:
        text = f.read()
    os.remove(os.path.join(RUN, 'job.json'))
job = json.loads(text)
# Only this boot's commands are reported (not the ones run before the save, like systemd-detect-virt above).
common.commands.clear()
# The clock stood still from the save until now: the host's time when it sent the job (off by the time the job
# took to get here, a fraction of a second; a cold boot reads the RTC to the second). The hardware clock is right
# already (QEMU's RTC follows the host's clock), so no `hwclock -w`, which costs seconds under TCG.
if 'timeNs' in job:
    time.clock_settime_ns(time.CLOCK_REALTIME, int(job['timeNs']))
started = time.time()
# A handler of its own beside cloud-init's (which keep logging the events): reporting configuration changes
# replace only the handlers they name.
instantiated_handler_registry.register_item('virtnode-warm-timings', event_timings)
steps = {}


def timed(name, fn, *args):
    t = time.monotonic()
    try:
        return fn(*args)
    finally:
        steps[name] = round(time.monotonic() - t, 2)


def write(path, text, mode=0o644):
    tmp = path + '.virtnode'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


failed = []


# growpart and resizefs run at every boot, so a semaphore does not leave them out: their own settings turn them
# off for this boot's stages (a configuration file given with --file).
PER_BOOT_OFF = {'growpart': {'growpart': {'mode': 'off'}}, 'resizefs': {'resize_rootfs': False}}
OFF_CFG = os.path.join(RUN, 'off.cfg')
# A warm launch has no seed device (the seed is in the seed directory): NoCloud need not probe every block device
# for a `cidata` label (five blkid runs under TCG) after it has found the seed directory.
NO_SEED_DEVICE = {'datasource': {'NoCloud': {'fs_label': None}}}

# `ifup -a` in a unit of its own, as networking.service runs it at a cold boot (a oneshot that stays active): the
# DHCP client it leaves running lives in that unit, not in this program's, which systemd stops with everything in
# it when this program exits (the lease would then never be renewed, and the address expire with it).
# systemd-run returns when ifup has.
IFUP = ['systemd-run', '--unit=virtnode-warm-ifup', '--service-type=oneshot', '--remain-after-exit', '--quiet', '/sbin/ifup', '-a']


def stage(*args):
    common.run_stage(args, failed, [OFF_CFG])


# Printed on the console as soon as ifup is done: the host probes SSH only from then on (a connection it opened
# before the guest had an address would reach sshd later and cost the guest a whole sshd start).
NETWORK_UP_LINE = 'virtnode-first-boot: network up\n'


def announce_network(ifup):
    ifup.wait()
    try:
        with open('/dev/console', 'w') as console:
            console.write(NETWORK_UP_LINE)
    except OSError:
        pass


def first_boot():
    # The kernel reseeded itself at the new VM generation ID; the host's bytes are mixed in as well, the seed
    # file the next boot credits is made new (every warm launch finds the same one on the template's disk), and
    # this interpreter's own generators (seeded when the template was saved) are seeded again.
    with open('/dev/urandom', 'w') as f:
        f.write(job['entropy'])
    with open('/var/lib/systemd/random-seed', 'wb') as f:
        f.write(os.urandom(512))
    random.seed(os.urandom(32))
    tempfile._name_sequence = None

    write('/etc/machine-id', job['machineId'] + '\n', 0o444)
    if os.path.isfile('/var/lib/dbus/machine-id') and not os.path.islink('/var/lib/dbus/machine-id'):
        write('/var/lib/dbus/machine-id', job['machineId'] + '\n', 0o444)

    seed_dir = '/var/lib/cloud/seed/nocloud'
    os.makedirs(seed_dir, mode=0o700, exist_ok=True)
    for name, text in job['seed'].items():
        write(os.path.join(seed_dir, name), text, 0o600)

    # Modules whose result the template's disk already carries from its source's first boot (the disk was grown,
    # grub's debconf and apt's sources written), and keys_to_console (it only prints), run only when this
    # instance's user-data configures them; the others are marked done for this instance, as cloud-init marks a
    # module it ran (so no later boot runs the per-instance ones).
    sem = os.path.join('/var/lib/cloud/instances', job['instanceId'], 'sem')
    os.makedirs(sem, mode=0o755, exist_ok=True)
    off = copy.deepcopy(NO_SEED_DEVICE)
    for module in job['skip']:
        write(os.path.join(sem, 'config_' + module), '%d: %f\n' % (os.getpid(), time.time()))
        off.update(PER_BOOT_OFF.get(module, {}))
    write(OFF_CFG, json.dumps(off) + '\n', 0o600)

    # The warm boot had no datasource, so cloud-init's generator turned it off for that boot: on again.
    os.makedirs('/run/cloud-init', exist_ok=True)
    if os.path.exists('/run/cloud-init/disabled'):
        os.remove('/run/cloud-init/disabled')
    open('/run/cloud-init/enabled', 'w').close()

    # The NICs were hot-plugged at the load: wait until the kernel has them.
    deadline = time.time() + 30
    while not os.path.exists('/sys/class/net/eth0') and time.time() < deadline:
        time.sleep(0.05)

    steps['prepare'] = round(time.time() - started, 2)
    network = None
    for name, unit, args in STAGES:
        if masked(unit):
            continue
        timed(name, stage, *args)
        if name == 'init-local':
            network = subprocess.Popen(IFUP, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            threading.Thread(target=announce_network, args=(network,), daemon=True).start()
        elif name == 'init-network':
            # sshd was stopped (its failed state reset) before the save: it had no host keys then; cloud-init has
            # written virtnode's now.
            subprocess.run(['systemctl', 'restart', '--no-block', 'ssh.service'], check=False)
    return timed('ifup-wait', network.wait) if network is not None else None


def profiled(fn):
    """fn under cProfile when the job asks for it (VIRTNODE_WARM_PROFILE on the host): the report then carries
    the hot spots of the first boot, by own time and by cumulative time, as pstats prints them."""
    if not job.get('profile'):
        return fn()
    import cProfile
    import io
    import pstats
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(fn)
    finally:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats('tottime').print_stats(45)
        stats.sort_stats('cumulative').print_stats(90)
        report['profile'] = out.getvalue()


report = {}
try:
    report['ifup'] = profiled(first_boot)
    report['cloudInitStatus'] = verdict()
except Exception:
    report['error'] = traceback.format_exc()
report['failedStages'] = failed
report['steps'] = steps
try:
    report['slowest'] = slowest()
except Exception:
    report['slowest'] = []
commands = common.commands
report['commands'] = {'count': len(commands), 'seconds': round(sum(c[1] for c in commands), 2), 'slowest': sorted(commands, key=lambda c: -c[1])[:8]}
report['seconds'] = round(time.time() - started, 2)
# The host reads report.json once it is there (written whole, then renamed into place).
write(os.path.join(RUN, 'report.json'), json.dumps(report) + '\n', 0o600)
