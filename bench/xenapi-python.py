"""os-xenapi's XenAPI.py (Debian python3-os-xenapi, XML-RPC only) as a worker for bench/xenapi-client.mjs.

Usage: /usr/bin/python3 bench/xenapi-python.py <url> <password> <concurrency> [<warm-up calls, 300>]
Logs in (one Session for sequential calls and one per thread, as os-xenapi's XenAPISession keeps a pool of
`concurrent` sessions: a ServerProxy is not thread-safe), prints "ready", then answers one command per line so the
benchmark can interleave it with the Node clients:
  seq <n> <offset>   n sequential VM.get_record    -> "<wall ms> <cpu us>"
  conc <n> <offset>  n VM.get_record over threads  -> "<wall ms> <cpu us>"
  all                one VM.get_all_records        -> "<wall ms> 0"
  quit               logs every session out
"""
import sys
import threading
import time

from os_xenapi.client import XenAPI

url, password, conc = sys.argv[1], sys.argv[2], int(sys.argv[3])
warmup = int(sys.argv[4]) if len(sys.argv) > 4 else 300


def login():
    s = XenAPI.Session(url)
    s.xenapi.login_with_password('root', password, '2.1', 'bench')
    return s


main = login()
vms = main.xenapi.VM.get_all()
sessions = [login() for _ in range(conc)]
for i in range(warmup):  # warm-up
    main.xenapi.VM.get_record(vms[i % len(vms)])


def seq(n, offset):
    for i in range(n):
        main.xenapi.VM.get_record(vms[(offset + i) % len(vms)])


def threaded(n, offset):
    counter = {'next': 0}
    lock = threading.Lock()

    def worker(s):
        while True:
            with lock:
                i = counter['next']
                counter['next'] += 1
            if i >= n:
                return
            s.xenapi.VM.get_record(vms[(offset + i) % len(vms)])

    threads = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def get_all():
    recs = main.xenapi.VM.get_all_records()
    assert len(recs) >= len(vms)


print('ready', flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == 'quit':
        break
    c, t = time.process_time(), time.perf_counter()
    if cmd[0] == 'seq':
        seq(int(cmd[1]), int(cmd[2]))
    elif cmd[0] == 'conc':
        threaded(int(cmd[1]), int(cmd[2]))
    elif cmd[0] == 'all':
        get_all()
    print('%f %f' % ((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1e6), flush=True)

for s in sessions + [main]:
    s.xenapi.session.logout()
