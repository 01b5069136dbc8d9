/**
 * The image-cache cleanup the original plugin installed as /usr/bin/destroy_cached_images (its
 * tools/destroy_cached_images.py, from nova's tools/xenserver): with `cache_images = all` nova keeps a base copy
 * of every image in the SR, and nothing removes the unused ones. It runs daily from root's crontab in the compute
 * VM, with nova's own code and configuration. Written here for Python 2 (Juno–Train) and 3 (Train–Ussuri); the
 * XAPI session class moved from nova to os-xenapi in Ocata.
 */
export const DESTROY_CACHED_IMAGES_PATH = '/usr/bin/destroy_cached_images'

export const DESTROY_CACHED_IMAGES_SCRIPT = `#!/usr/bin/env python
# Installed by xenstack (xenserver.compute-extras). Destroys the images nova-compute cached in the XenServer SR
# (cache_images = all) that no instance uses; --all_cached destroys every cached image, --dry_run only lists them.
# Usage: destroy_cached_images --config-file=/etc/nova/nova-compute.conf [--all_cached] [--dry_run] [--verbose]
from __future__ import print_function

import sys

from oslo_config import cfg

from nova import config
from nova.virt.xenapi import vm_utils

try:  # Ocata and later: the session lives in os-xenapi
    from os_xenapi.client import session as xenapi_session
except ImportError:  # Juno to Newton
    from nova.virt.xenapi.client import session as xenapi_session

CONF = cfg.CONF
CONF.register_cli_opts([
    cfg.BoolOpt('all_cached', default=False,
                help='Destroy every cached image, not only the unused ones.'),
    cfg.BoolOpt('dry_run', default=False, help='List the VDIs without destroying them.'),
])


def main():
    verbose = '--verbose' in sys.argv
    config.parse_args([a for a in sys.argv if a != '--verbose'])
    xs = CONF.xenserver
    try:
        session = xenapi_session.XenAPISession(
            xs.connection_url, xs.connection_username, xs.connection_password, originator='nova')
    except TypeError:  # before Ocata the session took no originator
        session = xenapi_session.XenAPISession(
            xs.connection_url, xs.connection_username, xs.connection_password)
    sr_ref = vm_utils.safe_find_sr(session)
    destroyed = vm_utils.destroy_cached_images(
        session, sr_ref, all_cached=CONF.all_cached, dry_run=CONF.dry_run)
    if verbose:
        for uuid in destroyed:
            print(uuid)
    print('%s %d cached VDIs' % ('Would destroy' if CONF.dry_run else 'Destroyed', len(destroyed)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
`
