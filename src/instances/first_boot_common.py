# virtnode: what both one-process first boots share, the warm launch's (warm-first-boot.py) and the cold boot's
# of a virtnode-built image (cold-first-boot.py): cloud-init's stages run one after the other in one Python
# interpreter instead of one `cloud-init` process per systemd unit, so Python starts and cloud-init's imports
# happen once, its configuration is parsed once, its output redirected once. Both programs put this file next to
# themselves (Python finds it there).
import copy
import glob
import os
import pkgutil
import time

import cloudinit.config
from cloudinit import safeyaml
from cloudinit import subp as ci_subp
from cloudinit import netinfo as ci_netinfo
from cloudinit import util as ci_util
from cloudinit.reporting import handlers as ci_reporting_handlers
from cloudinit.cmd import main
from cloudinit.cmd import status as ci_status

# cloud-init's stages in boot order, each with the systemd unit that runs it at a boot of its own units.
STAGES = [
    ('init-local', 'cloud-init-local.service', ['init', '--local']),
    ('init-network', 'cloud-init.service', ['init']),
    ('modules-config', 'cloud-config.service', ['modules', '--mode=config']),
    ('modules-final', 'cloud-final.service', ['modules', '--mode=final']),
]


def preload_modules():
    """Imports every module cloud-init may run, now (a warm launch loads them before its memory is saved)."""
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
# once in this process and every caller gets its own copy.
parse_yaml = safeyaml.load
parsed = {}


def load_yaml_once(blob):
    if not isinstance(blob, str):
        return parse_yaml(blob)
    if blob not in parsed:
        parsed[blob] = parse_yaml(blob)
    return copy.deepcopy(parsed[blob])


def parse_configuration_once():
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


# The network stage prints tables of the interfaces and routes on the console and in cloud-init-output.log, for
# reading only: four `ip` runs, 1-1.5 s under TCG. One line instead (`ip addr` and `ip route` show them).
def network_tables(prefix='ci-info: '):
    return prefix + 'interfaces and routes not listed at a one-process first boot (ip addr, ip route)'


def one_process():
    """Sets up this interpreter to run several of cloud-init's stages: what the comments above describe."""
    parse_configuration_once()
    ci_util.redirect_output = redirect_output_once
    ci_subp.subp = timed_command
    ci_netinfo.debug_info = network_tables
    # Whether this is a container (systemd-detect-virt, 0.3-0.5 s under TCG): asked once, cached by cloud-init
    # for this process.
    ci_util.is_container()
    # cloud-init's other repeated work, made once (importing the module installs it).
    import first_boot_caches  # noqa: F401  (imported for what importing it does)


def masked(unit):
    """Whether the image masks `unit` (a link to /dev/null): a boot of it does not run that stage."""
    return any(os.path.realpath(os.path.join(d, unit)) == '/dev/null' for d in ('/etc/systemd/system', '/run/systemd/system'))


def run_stage(args, failed, config_files=()):
    """One stage, as `cloud-init [--file F ...] ARGS` runs it; a failure (or an exception) is added to `failed`."""
    argv = ['cloud-init']
    for path in config_files:
        argv += ['--file', path]
    try:
        code = main.main(argv + list(args))
    except Exception:
        ci_util.logexc(main.LOG, 'cloud-init %s raised', ' '.join(args))
        code = 1
    if code:
        failed.append(' '.join(args))
    return code


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
