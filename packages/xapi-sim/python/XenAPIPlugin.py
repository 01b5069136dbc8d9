"""Dom0 plugin support for the xenstack XAPI simulator (written for xenstack, not copied from XenServer).

A XAPI plugin is an executable under /etc/xapi.d/plugins. XAPI runs it with one argument, an XML-RPC
<methodCall> whose method name is the plugin function and whose parameters are [session_ref, {args}], and
reads one XML-RPC <methodResponse> holding a XAPI envelope from its standard output:
  {"Status": "Success", "Value": <string>}  or  {"Status": "Failure", "ErrorDescription": [code, *params]}.

Plugins call dispatch({"fn": fn, ...}); each fn(session, args) returns a string or raises
Failure(code, params) to report a XAPI error unchanged. Any other exception becomes
XENAPI_PLUGIN_FAILURE [fn, ExceptionClassName, message]; an unknown function becomes
UNKNOWN_XENAPI_PLUGIN_FUNCTION [fn].
"""
import sys

try:
    import xmlrpc.client as _xmlrpc
except ImportError:  # Python 2 dom0s
    import xmlrpclib as _xmlrpc


class Failure(Exception):
    """A XAPI error raised by a plugin: reported to the caller exactly as (code, params)."""

    def __init__(self, code, params):
        Exception.__init__(self, code, params)
        self.code = code
        self.params = list(params)

    def __str__(self):
        return "XenAPIPlugin.Failure(%r, %r)" % (self.code, self.params)


def success_message(result):
    return _xmlrpc.dumps(({"Status": "Success", "Value": result},), methodresponse=True)


def failure_message(code, params):
    return _xmlrpc.dumps(
        ({"Status": "Failure", "ErrorDescription": [code] + [str(p) for p in params]},), methodresponse=True
    )


def _session(session_ref):
    """A XenAPI session bound to the caller's session ref, for plugins that call back into XAPI."""
    try:
        import XenAPI
    except ImportError:
        return session_ref
    s = XenAPI.xapi_local()
    s._session = session_ref
    return s


def dispatch(fn_table):
    if len(sys.argv) != 2:
        sys.stderr.write("usage: %s <xml-rpc methodCall>\n" % sys.argv[0])
        sys.exit(2)
    params, methodname = _xmlrpc.loads(sys.argv[1])
    session_ref = params[0] if len(params) > 0 else ""
    args = params[1] if len(params) > 1 else {}
    if methodname not in fn_table:
        sys.stdout.write(failure_message("UNKNOWN_XENAPI_PLUGIN_FUNCTION", [methodname]))
        return
    try:
        result = fn_table[methodname](_session(session_ref), args)
        sys.stdout.write(success_message(result))
    except SystemExit:
        raise
    except Failure as e:
        sys.stdout.write(failure_message(e.code, e.params))
    except Exception as e:
        sys.stdout.write(failure_message("XENAPI_PLUGIN_FAILURE", [methodname, e.__class__.__name__, str(e)]))
