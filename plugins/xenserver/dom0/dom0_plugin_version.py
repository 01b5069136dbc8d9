#!/usr/bin/env python
"""dom0_plugin_version: the version check os-xenapi's XenAPISession makes on connect (xenstack's dom0 plugin set).

Serialized calling convention of os-xenapi's dom0 plugins: args {"params": pickle({"args", "kwargs"})} in, a
pickled result out. Pickles travel as protocol-0 text (what Python 2 dom0s and clients exchanged). Runs under the
dom0's Python 2 (XenServer 7.x) and Python 3 (8.x) alike.

The version is the os-xenapi plugin interface this set answers for; xenstack's deployment compares it with the
minimum the OpenStack release needs (integration/dom0/plugins.ts).
"""
import pickle

import XenAPIPlugin

PLUGIN_VERSION = "2.1"


def get_version(session, arg_dict):
    params = pickle.loads(arg_dict["params"].encode("latin-1"))
    assert params.get("args", ()) in ((), []) and params.get("kwargs", {}) == {}
    return pickle.dumps(PLUGIN_VERSION, 0).decode("latin-1")


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"get_version": get_version})
