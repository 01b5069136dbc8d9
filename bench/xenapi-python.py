"""os-xenapi's XenAPI.py (Debian python3-os-xenapi, XML-RPC only) side of bench/xenapi-client.mjs.

Usage: /usr/bin/python3 bench/xenapi-python.py <url> <password> <seq_calls> <conc_calls> <concurrency> <rounds>
Prints one JSON line with the best of <rounds>: seq_cps, seq_cpu_us, conc_cps, conc_cpu_us, all_records_ms.
Concurrency uses one Session per thread, as os-xenapi's XenAPISession keeps a pool of `concurrent` sessions (a
ServerProxy is not thread-safe).
"""
import json
import sys
import threading
import time

from os_xenapi.client import XenAPI

url, password = sys.argv[1], sys.argv[2]
seq_n, conc_n, conc, rounds = (int(x) for x in sys.argv[3:7])


def login():
    s = XenAPI.Session(url)
    s.xenapi.login_with_password('root', password, '2.1', 'bench')
    return s


main = login()
vms = main.xenapi.VM.get_all()
sessions = [login() for _ in range(conc)]

for i in range(300):  # warm-up
    main.xenapi.VM.get_record(vms[i % len(vms)])


def seq_round():
    c, t = time.process_time(), time.perf_counter()
    for i in range(seq_n):
        main.xenapi.VM.get_record(vms[i % len(vms)])
    return seq_n / (time.perf_counter() - t), (time.process_time() - c) * 1e6 / seq_n


def conc_round():
    counter = {'next': 0}
    lock = threading.Lock()

    def worker(s):
        while True:
            with lock:
                i = counter['next']
                counter['next'] += 1
            if i >= conc_n:
                return
            s.xenapi.VM.get_record(vms[i % len(vms)])

    threads = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    c, t = time.process_time(), time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return conc_n / (time.perf_counter() - t), (time.process_time() - c) * 1e6 / conc_n


def all_round():
    t = time.perf_counter()
    recs = main.xenapi.VM.get_all_records()
    assert len(recs) >= len(vms)
    return (time.perf_counter() - t) * 1000


best = {'seq_cps': 0, 'seq_cpu_us': float('inf'), 'conc_cps': 0, 'conc_cpu_us': float('inf'),
        'all_records_ms': float('inf')}
for _ in range(rounds):
    cps, cpu = seq_round()
    best['seq_cps'] = max(best['seq_cps'], cps)
    best['seq_cpu_us'] = min(best['seq_cpu_us'], cpu)
    cps, cpu = conc_round()
    best['conc_cps'] = max(best['conc_cps'], cps)
    best['conc_cpu_us'] = min(best['conc_cpu_us'], cpu)
    best['all_records_ms'] = min(best['all_records_ms'], all_round())

for s in sessions + [main]:
    s.xenapi.session.logout()

print(json.dumps(best))
