"""Runs cloud-init's own command line, `cloud-init ARGS... --config-file FILE`, for each FILE in one Python process
(one interpreter start and one import of cloud-init instead of one per file). Prints one JSON line per file: its
exit code, stdout and stderr, exactly as the command would give them.

usage: python3 cloud-init-schema-batch.py '["schema"]' FILE...
"""
import contextlib
import io
import json
import sys

from cloudinit.cmd import main as cloud_init_main

args = json.loads(sys.argv[1])
for path in sys.argv[2:]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cloud_init_main.main(['cloud-init', *args, '--config-file', path])
        except SystemExit as e:
            code = e.code
    if not isinstance(code, int):
        code = 0 if code is None else 1
    print(json.dumps({'file': path, 'code': code, 'stdout': out.getvalue(), 'stderr': err.getvalue()}), flush=True)
