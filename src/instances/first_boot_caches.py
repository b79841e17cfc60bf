# virtnode: cloud-init's repeated work made once per process, for the one-process first boots (warm-first-boot.py,
# cold-first-boot.py). Importing this module installs it (first_boot_common.one_process() does, after the
# configuration is parsed once); each piece below says what it keeps and why the result cannot differ from
# cloud-init's own. Measured in the warm launch's profile (bench/README.md): logging set up again per stage, the
# base configuration merged a dozen times, deep copies, module lookups, the schema, argparse's translations,
# jinja templates compiled at each use, and three commands that cannot change anything here.
import argparse
import copy
import functools
import glob
import os
import sys
import types

from cloudinit import distros as ci_distros
from cloudinit import helpers as ci_helpers
from cloudinit import importer as ci_importer
from cloudinit import log as ci_log
from cloudinit import net as ci_net
from cloudinit import settings as ci_settings
from cloudinit import ssh_util as ci_ssh_util
from cloudinit import stages as ci_stages
from cloudinit import templater as ci_templater
from cloudinit.config import cc_final_message as ci_final_message
from cloudinit.config import cc_set_passwords as ci_set_passwords
from cloudinit.config import modules as ci_config_modules
from cloudinit.config import schema as ci_schema

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
# so they are made once (a warm launch: before the save); the check of each instance's configuration still runs in full.
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
# Made now (a warm launch: before the save), with the file every stage passes (the instance's data it would render templates with).
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
# instance renders are compiled now (a warm launch: before the save).
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
