# virtnode: the first boot of a warm launch, run by qemu-guest-agent (python3 -c) in a guest just loaded from
# a template's warm state. Its input (stdin, JSON): machineId, entropy (hex, from the host), seed (NoCloud
# file name -> text). It does what a cold first boot does for a new instance: a fresh machine-id, fresh random
# state, then cloud-init's four stages, in this one interpreter (its modules are in the page cache already),
# with the NIC brought up by ifupdown between the local and the network stage, as networking.service would.
import json
import os
import subprocess
import sys
import time

job = json.load(sys.stdin)


def write(path, text, mode=0o644):
    tmp = path + '.virtnode'
    with open(tmp, 'w') as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# The kernel reseeded itself at the new VM generation ID; the host's bytes are mixed in as well, and the seed
# file the next boot credits is made new (every warm launch found the same one on the template's disk).
with open('/dev/urandom', 'w') as f:
    f.write(job['entropy'])
with open('/var/lib/systemd/random-seed', 'wb') as f:
    f.write(os.urandom(512))

write('/etc/machine-id', job['machineId'] + '\n', 0o444)
if os.path.isfile('/var/lib/dbus/machine-id') and not os.path.islink('/var/lib/dbus/machine-id'):
    write('/var/lib/dbus/machine-id', job['machineId'] + '\n', 0o444)

seed_dir = '/var/lib/cloud/seed/nocloud'
os.makedirs(seed_dir, mode=0o700, exist_ok=True)
for name, text in job['seed'].items():
    write(os.path.join(seed_dir, name), text, 0o600)

# The warm boot had no datasource, so cloud-init's generator turned it off for that boot: on again.
os.makedirs('/run/cloud-init', exist_ok=True)
if os.path.exists('/run/cloud-init/disabled'):
    os.remove('/run/cloud-init/disabled')
open('/run/cloud-init/enabled', 'w').close()

# The NICs were hot-plugged at the load: wait until the kernel has them.
deadline = time.time() + 30
while not os.path.exists('/sys/class/net/eth0') and time.time() < deadline:
    time.sleep(0.05)

from cloudinit.cmd import main  # noqa: E402  (after the seed is in place)

failed = []


def stage(*args):
    if main.main(['cloud-init', *args]):
        failed.append(' '.join(args))


stage('init', '--local')
network = subprocess.Popen(['ifup', '-a'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stage('init')
# sshd failed at the warm boot (no host keys then); cloud-init has written virtnode's.
subprocess.run(['systemctl', 'reset-failed', 'ssh.service'], check=False)
subprocess.run(['systemctl', 'restart', '--no-block', 'ssh.service'], check=False)
stage('modules', '--mode=config')
stage('modules', '--mode=final')
network.wait()
print(json.dumps({'failedStages': failed, 'ifup': network.returncode}))
