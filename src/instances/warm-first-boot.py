# virtnode: the first boot of a warm launch. `template create --warm` starts this program (a transient systemd
# service) in the template's one warm boot: it imports cloud-init's code, says it is ready, and blocks on a FIFO;
# the guest's memory is saved right then. Each warm launch loads that memory and writes its job into the FIFO
# through the guest agent: machineId, entropy (hex, from the host), seed (NoCloud file name -> text). It then does
# what a cold first boot does for a new instance: a fresh machine-id, fresh random state, then cloud-init's stages
# in this interpreter (its code is loaded already): the ones the image's systemd would run at a boot (local,
# network, config, final; not a stage whose unit the image masks, as virtnode's image masks cloud-config.service
# and runs those modules in final), the NIC brought up by ifupdown between the local and the network stage as
# networking.service would, and writes a JSON report into the result FIFO: cloud-init's own
# verdict (what `cloud-init status --long` prints, so the host needs no SSH round trip for it), how long each step
# took and cloud-init's slowest modules of this boot (its own events' timings, which `cloud-init analyze blame`
# reads back from its log: here they are taken as cloud-init reports them, with no log to parse at the end).
import argparse
import functools
import json
import os
import sys
import pkgutil
import random
import subprocess
import tempfile
import time
import traceback
import types

import copy
import gc
import glob

import cloudinit.config
from cloudinit import safeyaml
from cloudinit import subp as ci_subp
from cloudinit import netinfo as ci_netinfo
from cloudinit import util as ci_util
from cloudinit import importer as ci_importer
from cloudinit import settings as ci_settings
from cloudinit import stages as ci_stages
from cloudinit import helpers as ci_helpers
from cloudinit import log as ci_log
from cloudinit import templater as ci_templater
from cloudinit.config import modules as ci_config_modules
from cloudinit.config import cc_final_message as ci_final_message
from cloudinit.config import schema as ci_schema
from cloudinit import net as ci_net
from cloudinit import distros as ci_distros
from cloudinit import ssh_util as ci_ssh_util
from cloudinit.config import cc_set_passwords as ci_set_passwords
from cloudinit.reporting import handlers as ci_reporting_handlers
from cloudinit.reporting import instantiated_handler_registry
from cloudinit.cmd import main
from cloudinit.cmd import status as ci_status

for extra in ('cloudinit.distros.debian', 'cloudinit.sources.DataSourceNoCloud', 'cloudinit.net.eni', 'cloudinit.net.activators', 'cloudinit.net.netplan', 'cloudinit.net.networkd'):
    try:
        __import__(extra)
    except Exception:
        pass
for module in pkgutil.iter_modules(cloudinit.config.__path__):
    try:
        __import__('cloudinit.config.' + module.name)
    except Exception:
        pass

# cloud-init parses its configuration (/etc/cloud/cloud.cfg and cloud.cfg.d) with pure-Python YAML again at every
# stage and module run, about a second each under TCG. Parsing is a function of the text, so each text is parsed
# once in this process (the configuration already before the save) and every caller gets its own copy.
parse_yaml = safeyaml.load
parsed = {}


def load_yaml_once(blob):
    if not isinstance(blob, str):
        return parse_yaml(blob)
    if blob not in parsed:
        parsed[blob] = parse_yaml(blob)
    return copy.deepcopy(parsed[blob])


safeyaml.load = load_yaml_once
for path in ['/etc/cloud/cloud.cfg', *sorted(glob.glob('/etc/cloud/cloud.cfg.d/*.cfg'))]:
    try:
        with open(path) as f:
            load_yaml_once(f.read())
    except Exception:
        pass

# Each stage sends its output to `output` of cloud.cfg (`| tee -a /var/log/cloud-init-output.log`): a new shell
# and tee, forked from this large process (a preexec_fn rules out vfork), at every stage, each replacing the last.
# In one process the same redirection is made once; the next stages write into the same pipe (and log file).
redirect_output = ci_util.redirect_output
redirected = set()


def redirect_output_once(outfmt, errfmt, o_out=None, o_err=None):
    if o_out is not None or o_err is not None:
        return redirect_output(outfmt, errfmt, o_out, o_err)
    if (outfmt, errfmt) in redirected:
        return None
    redirected.clear()
    redirected.add((outfmt, errfmt))
    return redirect_output(outfmt, errfmt)


ci_util.redirect_output = redirect_output_once

# Every command cloud-init runs (subp), timed for the report: under TCG each start of a program costs the guest.
commands = []
run_command = ci_subp.subp


def timed_command(args, *rest, **options):
    t = time.monotonic()
    try:
        return run_command(args, *rest, **options)
    finally:
        name = ' '.join(str(a) for a in args[:2]) if isinstance(args, (list, tuple)) else str(args)
        commands.append([name[:60], round(time.monotonic() - t, 2)])


ci_subp.subp = timed_command


class EventTimings(ci_reporting_handlers.ReportingHandler):
    """cloud-init's reporting events within its stages (datasource steps, module runs) as they happen: [name, seconds]."""

    def __init__(self):
        super().__init__()
        self.starts = {}
        self.seconds = []

    def publish_event(self, event):
        if event.event_type == 'start':
            self.starts[event.name] = event.timestamp
        elif event.event_type == 'finish' and event.name in self.starts and '/' in event.name:
            self.seconds.append([event.name, round(event.timestamp - self.starts.pop(event.name), 2)])


event_timings = EventTimings()

# Whether this is a container (systemd-detect-virt, 0.3-0.5 s under TCG): asked once now, cached by cloud-init for
# this process. Every load of this memory is the same virtual machine model, never a container.
ci_util.is_container()

# The network stage prints tables of the interfaces and routes on the console and in cloud-init-output.log, for
# reading only: four `ip` runs, 1-1.5 s under TCG. A warm launch prints one line instead (`ip addr` shows them).
def network_tables(prefix='ci-info: '):
    return prefix + 'interfaces and routes not listed at a warm launch (ip addr, ip route)'


ci_netinfo.debug_info = network_tables

# Two commands whose answer cannot change what cloud-init does next here, each a program start (0.3 s under TCG):
#
# `passwd -l USER` (users-groups, for a user with lock_passwd, the default) prefixes the password field in
# /etc/shadow with `!` unless it starts with one already; then it leaves the field as it is. The template's users
# were locked at its source's first boot, so for them this is asked in-process first, and passwd runs only when
# it would change the field.
distro_lock_passwd = ci_distros.Distro.lock_passwd


def shadow_field(name):
    try:
        with open('/etc/shadow') as f:
            for line in f:
                fields = line.split(':')
                if fields[0] == name and len(fields) > 1:
                    return fields[1]
    except OSError:
        pass
    return None


def lock_passwd_unless_locked(self, name):
    field = shadow_field(name)
    if field is not None and field.startswith('!'):
        ci_distros.LOG.debug('Password of %s is locked already (as passwd -l would leave it)', name)
        return None
    return distro_lock_passwd(self, name)


ci_distros.Distro.lock_passwd = lock_passwd_unless_locked

# `systemctl status ssh` (set-passwords, for ssh_pwauth) only decides whether sshd is restarted after
# PasswordAuthentication is written; when the sshd configuration has that value already, nothing is written and
# nothing restarted whatever the answer: then the command is left out.
ssh_pwauth = ci_set_passwords.handle_ssh_pwauth


def ssh_pwauth_unless_set(pw_auth, distro):
    if isinstance(pw_auth, bool):
        fname = ci_ssh_util.DEF_SSHD_CFG
        if ci_ssh_util._includes_dconf(fname):
            fname = os.path.join(fname + '.d', '50-cloud-init.conf')
        if os.path.isfile(fname):
            lines = ci_ssh_util.parse_ssh_config(fname)
            if not ci_ssh_util.update_ssh_config_lines(lines=lines, updates={'PasswordAuthentication': 'yes' if pw_auth else 'no'}):
                ci_set_passwords.LOG.debug('No need to restart SSH service, PasswordAuthentication not updated.')
                return None
    return ssh_pwauth(pw_auth, distro)


ci_set_passwords.handle_ssh_pwauth = ssh_pwauth_unless_set

# Interface renaming (network config that names NICs by MAC, as virtnode's does) asks `ip` twice for the NICs'
# addresses (whether a NIC may be taken down to rename it) before it looks whether any NIC needs a new name. When
# every NIC has its name already there is nothing to do either way: that is looked at first, from /sys.
rename_interfaces = ci_net._rename_interfaces


def named_already(info, rename):
    mac, new_name, driver, device_id = rename
    mac = mac.lower() if mac else mac
    if not mac:
        return False
    matches = [
        d for d in info.values()
        if d['mac'] == mac and (not driver or d['driver'] == driver) and (not (driver and device_id) or d['device_id'] == device_id)
    ]
    return len(matches) == 1 and matches[0]['name'] == new_name


def rename_interfaces_when_needed(renames, strict_present=True, strict_busy=True, current_info=None):
    if renames and current_info is None:
        info = ci_net._get_current_rename_info(check_downable=False)
        if all(named_already(info, r) for r in renames):
            ci_net.LOG.debug('no work necessary for renaming of %s', renames)
            return None
    return rename_interfaces(renames, strict_present, strict_busy, current_info)


ci_net._rename_interfaces = rename_interfaces_when_needed

# The user-data's check against cloud-init's schema (the init-network stage): the schema is read from its JSON
# file and jsonschema's validator class built anew at each call. Both depend on the installed cloud-init only,
# so they are made once, before the save; the check of each instance's configuration still runs in full.
full_schema = ci_schema.get_schema()
schema_validator = ci_schema.get_jsonschema_validator()
ci_schema.get_schema = lambda: full_schema
ci_schema.get_jsonschema_validator = lambda: schema_validator

# Where cloud-init looks for a module by name (each module of a section, each merger, the datasources, at every
# stage): importlib's search of every sys.path directory for names that are not there. The answers depend on the
# installed Python code only, so each question is asked once in this process (while sys.path is the one it had
# at the save: a user's part-handler directory on it is searched as cloud-init would).
find_module = ci_importer.find_module
found_modules = {}
SYS_PATH = tuple(sys.path)


def find_module_once(base_name, search_paths, required_attrs=None):
    if tuple(sys.path) != SYS_PATH:
        return find_module(base_name, search_paths, required_attrs)
    key = (base_name, tuple(search_paths), tuple(required_attrs or ()))
    if key not in found_modules:
        found_modules[key] = find_module(base_name, search_paths, required_attrs)
    found, looked = found_modules[key]
    return (list(found), list(looked))


ci_importer.find_module = find_module_once

# Each stage builds cloud-init's command line parser anew; argparse translates every help text through gettext,
# which looks for message catalogs on disk each time. The translation of a text does not change in this process.
argparse._ = functools.lru_cache(maxsize=None)(argparse._)

# The base configuration (cloud-init's built-in one, /etc/cloud/cloud.cfg and cloud.cfg.d, /run/cloud-init/cloud.cfg,
# the kernel command line) is read and merged anew a dozen times in the stages. It is made again only when one of
# those files changed (a stage's write_files may add one), never cached when one of them is a jinja template (its
# result depends on the instance's data).
fetch_base_config = ci_stages.fetch_base_config
base_configs = {}


def config_files_state():
    files = [ci_settings.CLOUD_CONFIG, ci_settings.RUN_CLOUD_CONFIG]
    confd = ci_settings.CLOUD_CONFIG + '.d'
    if os.path.isdir(confd):
        files += [os.path.join(confd, f) for f in sorted(os.listdir(confd))]
    state = []
    for path in files:
        try:
            st = os.stat(path)
            state.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            state.append((path, None))
    return tuple(state)


def templated(state):
    for entry in state:
        if entry[1] is None or not entry[0].endswith('.cfg'):
            continue
        try:
            with open(entry[0], 'rb') as f:
                if f.read(64).lstrip().startswith(b'## template'):
                    return True
        except OSError:
            return True
    return False


def fetch_base_config_once(*, instance_data_file=None):
    state = config_files_state()
    key = (instance_data_file, state)
    if key not in base_configs:
        cfg = fetch_base_config(instance_data_file=instance_data_file)
        if 'conf_d' in cfg or templated(state):
            return cfg
        base_configs.clear()
        base_configs[key] = cfg
    return copy.deepcopy(base_configs[key])


ci_stages.fetch_base_config = fetch_base_config_once
# Made now, before the save, with the file every stage passes (the instance's data it would render templates with).
fetch_base_config_once(instance_data_file=ci_helpers.Paths({}).get_runpath('instance_data_sensitive'))

# cloud-init hands out a deep copy of its merged configuration at every look (each module's run, each stage's
# sections: about sixty), through copy.deepcopy, whose bookkeeping per object (memo, ids, keep-alive list) costs
# more than the copying under TCG. The configuration is YAML and JSON data (dicts, lists, strings, numbers): those
# are copied directly, anything else still by copy.deepcopy. (A YAML alias then becomes two equal copies instead
# of one object seen twice; nothing in cloud-init tells them apart.)
ATOMS = (str, int, float, bool, type(None), bytes)


def plain_copy(value, memo=None):
    t = type(value)
    if t is dict:
        return {k: plain_copy(v) for k, v in value.items()}
    if t is list:
        return [plain_copy(v) for v in value]
    if t in ATOMS:
        return value
    return copy.deepcopy(value, memo)


ci_config_modules.copy = ci_stages.copy = types.SimpleNamespace(deepcopy=plain_copy, copy=copy.copy)

# Each stage configures logging from the same configuration again (logging.config.fileConfig: new handlers, and
# every one of cloud-init's hundred loggers reset, each reset walking all of them). With the configuration
# unchanged since the last time it is left as it is.
setup_logging = ci_log.setupLogging
logging_set_up = []


def setup_logging_once(cfg=None):
    key = repr(((cfg or {}).get('logcfg'), (cfg or {}).get('log_cfgs'), (cfg or {}).get('log_basic', True)))
    if logging_set_up == [key]:
        return None
    logging_set_up[:] = [key]
    return setup_logging(cfg)


ci_log.setupLogging = setup_logging_once

# Jinja templates cloud-init renders (/etc/hosts from hosts.debian.tmpl, the final message) are compiled to Python
# at each use. A compiled template renders any parameters; it is kept by its text and options, and the ones every
# instance renders are compiled now, before the save.
jinja_template = ci_templater.JTemplate
compiled_templates = {}


def jinja_template_once(source, **options):
    key = (source, tuple(sorted((k, repr(v)) for k, v in options.items())))
    if key not in compiled_templates:
        compiled_templates[key] = jinja_template(source, **options)
    return compiled_templates[key]


def precompile(text):
    kind, _render, rest = ci_templater.detect_template(text)
    if kind == 'jinja':
        jinja_template_once(rest, undefined=ci_templater.UndefinedJinjaVariable, trim_blocks=True, extensions=['jinja2.ext.do'])


if ci_templater.JINJA_AVAILABLE:
    ci_templater.JTemplate = jinja_template_once
    for text in [ci_final_message.FINAL_MESSAGE_DEF]:
        precompile(text)
    for path in glob.glob('/etc/cloud/templates/hosts.debian.tmpl'):
        try:
            with open(path) as f:
                precompile(f.read())
        except Exception:
            pass

RUN = '/run/virtnode-warm'
os.makedirs(RUN, mode=0o700, exist_ok=True)
for fifo in ('job', 'result'):
    if not os.path.exists(os.path.join(RUN, fifo)):
        os.mkfifo(os.path.join(RUN, fifo), 0o600)
# Everything loaded so far lives as long as this program: the garbage collector need not walk it again at every
# full collection during the stages (under TCG each walk of cloud-init's objects costs the guest time).
gc.collect()
gc.freeze()
open(os.path.join(RUN, 'ready'), 'w').close()

# ---- the memory is saved while this waits; everything below runs in a warm-launched instance ----
with open(os.path.join(RUN, 'job')) as f:
    job = json.load(f)
# Only this boot's commands are reported (not the ones run before the save, like systemd-detect-virt above).
commands.clear()
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

# cloud-init's stages in boot order, each with the systemd unit that runs it at a cold boot.
STAGES = [
    ('init-local', 'cloud-init-local.service', ['init', '--local']),
    ('init-network', 'cloud-init.service', ['init']),
    ('modules-config', 'cloud-config.service', ['modules', '--mode=config']),
    ('modules-final', 'cloud-final.service', ['modules', '--mode=final']),
]


# `ifup -a` in a unit of its own, as networking.service runs it at a cold boot (a oneshot that stays active): the
# DHCP client it leaves running lives in that unit, not in this program's, which systemd stops with everything in
# it when this program exits (the lease would then never be renewed, and the address expire with it).
# systemd-run returns when ifup has.
IFUP = ['systemd-run', '--unit=virtnode-warm-ifup', '--service-type=oneshot', '--remain-after-exit', '--quiet', '/sbin/ifup', '-a']


def masked(unit):
    """Whether the image masks `unit` (a link to /dev/null): a cold boot of it does not run that stage."""
    return any(os.path.realpath(os.path.join(d, unit)) == '/dev/null' for d in ('/etc/systemd/system', '/run/systemd/system'))


def stage(*args):
    if main.main(['cloud-init', '--file', OFF_CFG, *args]):
        failed.append(' '.join(args))


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
        elif name == 'init-network':
            # sshd was stopped (its failed state reset) before the save: it had no host keys then; cloud-init has
            # written virtnode's now.
            subprocess.run(['systemctl', 'restart', '--no-block', 'ssh.service'], check=False)
    return timed('ifup-wait', network.wait) if network is not None else None


def verdict():
    """What `cloud-init status --long` prints, from the same function it uses."""
    d = ci_status.get_status_details()
    lines = ['status: ' + d.status.value, 'boot_status_code: ' + d.boot_status_code.value]
    if d.last_update:
        lines.append('last_update: ' + d.last_update)
    lines += ['detail:', d.description]
    if d.errors:
        lines += ['errors:'] + ['\t- ' + e.replace('\n', ' ') for e in d.errors]
    return '\n'.join(lines) + '\n'


def slowest(count=15):
    """This boot's slowest cloud-init events (module runs, datasource steps; the stages are in steps), seconds each."""
    return sorted(event_timings.seconds, key=lambda e: -e[1])[:count]


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
report['commands'] = {'count': len(commands), 'seconds': round(sum(c[1] for c in commands), 2), 'slowest': sorted(commands, key=lambda c: -c[1])[:8]}
report['seconds'] = round(time.time() - started, 2)
with open(os.path.join(RUN, 'result'), 'w') as f:
    f.write(json.dumps(report) + '\n')
