#!/usr/bin/env python
"""nova_plugin_version: the version check nova's XenAPI driver made on connect before Ocata (xenstack's dom0 set).

Until Newton the dom0 plugins lived in nova's tree; nova called this file (`nova_plugin_version`, and from 1.8 on
`nova_plugin_version.py` — both names are installed) with the serialized convention: args {"params":
pickle({"args", "kwargs"})} in, a pickled result out, as protocol-0 text. "1.8" is the last version nova's tree
shipped, compatible with every pre-Ocata minimum (same major, minor at least the release's).
Runs under the dom0's Python 2 and Python 3 alike.
"""
import pickle

import XenAPIPlugin

PLUGIN_VERSION = "1.8"


def get_version(session, arg_dict):
    params = pickle.loads(arg_dict["params"].encode("latin-1"))
    assert params.get("args", ()) in ((), []) and params.get("kwargs", {}) == {}
    return pickle.dumps(PLUGIN_VERSION, 0).decode("latin-1")


if __name__ == "__main__":
    XenAPIPlugin.dispatch({"get_version": get_version})
