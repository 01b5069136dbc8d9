"""The dom0 `XenAPI` module for plugins run by the xenstack XAPI simulator.

Re-exports Debian's os-xenapi SDK (os_xenapi.client.XenAPI) and points xapi_local() — which on a real dom0
talks to /var/xapi/xapi — at the simulator's URL, given by the simulator in XENSTACK_XAPI_URL.
"""
import os

from os_xenapi.client.XenAPI import *  # noqa: F401,F403
from os_xenapi.client.XenAPI import Session


def xapi_local():
    return Session(os.environ.get("XENSTACK_XAPI_URL", "http://127.0.0.1/"))
