#!/usr/bin/env python
"""xenstack_dom0: read-only views of what xenstack set up in dom0, through XAPI's plugin contract.

Plain calling convention (XenAPIPlugin.dispatch): every argument is a string in the args dict, every result a
string (JSON here), and a refused call raises XenAPIPlugin.Failure(code, params), which XAPI re-raises to the
caller unchanged (code first, then the params). Health checks use it to see dom0's routes and firewall without SSH.
Runs under the dom0's Python 2 (XenServer 7.x) and Python 3 (8.x) alike.

  route(cidr)      {"cidr", "routes": ["<cidr> via <gw> dev <dev> ...", ...]}  (`ip -4 route show exact <cidr>`)
  chain(chain[, table])  {"table", "chain", "rules": ["-A <chain> ...", ...]}   (`iptables -t <table> -S <chain>`)
  version()        "1.0"
"""
import json
import re
import subprocess

import XenAPIPlugin

VERSION = "1.0"
TABLES = ("filter", "nat", "mangle", "raw")


def _arg(args, name):
    value = args.get(name)
    if value is None or value == "":
        raise XenAPIPlugin.Failure("ArgumentError", ["missing argument", name])
    return value


def _run(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if not isinstance(out, str):
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    return proc.returncode, out, err


def route(session, args):
    cidr = _arg(args, "cidr")
    m = re.match(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$", cidr)
    if not m or any(int(o) > 255 for o in m.groups()[:4]) or int(m.group(5)) > 32:
        raise XenAPIPlugin.Failure("ArgumentError", ["not an IPv4 network like 10.0.0.0/22", cidr])
    code, out, err = _run(["ip", "-4", "route", "show", "exact", cidr])
    if code != 0:
        raise XenAPIPlugin.Failure("CommandFailed", ["ip route show", str(code), err.strip()])
    return json.dumps({"cidr": cidr, "routes": [l.strip() for l in out.splitlines() if l.strip()]})


def chain(session, args):
    name = _arg(args, "chain")
    table = args.get("table") or "filter"
    if table not in TABLES:
        raise XenAPIPlugin.Failure("ArgumentError", ["unknown table", table])
    if not re.match(r"^[A-Za-z0-9_.-]{1,28}$", name):
        raise XenAPIPlugin.Failure("ArgumentError", ["not a chain name", name])
    code, out, err = _run(["iptables", "-w", "-t", table, "-S", name])
    if code != 0:
        raise XenAPIPlugin.Failure("NoSuchChain", [table, name, err.strip()])
    rules = [l for l in out.splitlines() if l.startswith("-A ")]
    return json.dumps({"table": table, "chain": name, "rules": rules})


def version(session, args):
    return VERSION


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"route": route, "chain": chain, "version": version})
