/**
 * Small programs the lab installs into every lab host's /usr/local/bin (a read-only overlay of
 * <lab dir>/bin over the machine's /usr/local/bin, inside the host's mount namespace only).
 *
 * - lab-http-probe.mjs ADDR PORT NAME READY_FILE — the controller's reachability endpoint: answers every request
 *   with {"host": NAME, "client": "<source address>"} and logs one JSON line per request on stdout.
 * - lab-xapi-relay.mjs ADDR PORT SOCKET READY_FILE — dom0's XAPI on the HIMN (169.254.0.1:80): relays each TCP
 *   connection to a unix socket that the lab serves from the machine's namespace and connects to the simulator.
 * - lab-dhcp-client IFACE [--apply] — one DHCP exchange (DISCOVER/OFFER/REQUEST/ACK) on IFACE; prints
 *   "ADDR/PREFIX SERVER LEASE_SECONDS"; with --apply also brings IFACE up and adds the address (no routes).
 * - xenstore-read KEY…, xenstore-write KEY VALUE…, xenstore-ls [PATH], xenstore-rm KEY… — a guest's view
 *   of xenstore, over the unix socket /run/xenstored/socket that the lab serves for this host (keys relative
 *   to the domain's home, e.g. vm-data/himn_mac, as a guest reads them).
 */

const HTTP_PROBE = `// lab HTTP reachability endpoint (xenstack lab): reports the client's source address
import http from 'node:http'
import { writeFileSync } from 'node:fs'
const [addr, port, name, ready] = process.argv.slice(2)
const server = http.createServer((req, res) => {
  const client = req.socket.remoteAddress
  console.log(JSON.stringify({ time: new Date().toISOString(), client, method: req.method, url: req.url }))
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ host: name, client }) + '\\n')
})
server.listen(Number(port), addr, () => {
  console.log(JSON.stringify({ listening: addr + ':' + port }))
  if (ready) writeFileSync(ready, '')
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
`

const XAPI_RELAY = `// dom0's XAPI endpoint on the HIMN (xenstack lab): TCP ADDR:PORT -> the simulator, through a unix socket the lab
// serves from the machine's namespace (this host has its own network namespace and cannot reach the machine's).
import net from 'node:net'
import { writeFileSync } from 'node:fs'
const [addr, port, socketPath, ready] = process.argv.slice(2)
const server = net.createServer((client) => {
  const upstream = net.connect(socketPath)
  client.on('error', () => upstream.destroy())
  upstream.on('error', () => client.destroy())
  client.pipe(upstream).pipe(client)
})
server.listen(Number(port), addr, () => {
  console.log(JSON.stringify({ listening: addr + ':' + port, to: socketPath }))
  if (ready) writeFileSync(ready, '')
})
process.on('SIGTERM', () => process.exit(0))
`

const DHCP_CLIENT = `#!/usr/bin/python3
"""One DHCP exchange on an interface (xenstack lab). Prints 'ADDR/PREFIX SERVER LEASE'.
--apply: bring the interface up and add the address (never a route)."""
import os, random, socket, struct, subprocess, sys, time

args = [a for a in sys.argv[1:] if not a.startswith('--')]
if len(args) != 1:
    sys.exit('usage: lab-dhcp-client IFACE [--apply]')
ifname, apply = args[0], '--apply' in sys.argv
try:
    mac = bytes.fromhex(open('/sys/class/net/%s/address' % ifname).read().strip().replace(':', ''))
except OSError:
    sys.exit('lab-dhcp-client: no interface %s' % ifname)
if apply:
    subprocess.run(['ip', 'link', 'set', ifname, 'up'], check=True)
xid = random.getrandbits(32)
MAGIC = b'\\x63\\x82\\x53\\x63'

def message(kind, options=b''):
    head = struct.pack('!BBBBIHHIIII', 1, 1, 6, 0, xid, 0, 0x8000, 0, 0, 0, 0)
    body = mac + bytes(10) + bytes(192) + MAGIC
    opts = bytes([53, 1, kind]) + bytes([61, 7, 1]) + mac + bytes([55, 3, 1, 51, 54]) + options + b'\\xff'
    return head + body + opts

def options_of(data):
    if len(data) < 240 or data[236:240] != MAGIC or struct.unpack('!I', data[4:8])[0] != xid:
        return None
    found, i = {}, 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        found[data[i]] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    return data[16:20], found

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
sock.setsockopt(socket.SOL_SOCKET, 25, ifname.encode())  # SO_BINDTODEVICE
sock.bind(('0.0.0.0', 68))

def exchange(msg, want, tries=6):
    for _ in range(tries):
        sock.sendto(msg, ('255.255.255.255', 67))
        deadline = time.time() + 1
        while time.time() < deadline:
            sock.settimeout(max(0.01, deadline - time.time()))
            try:
                got = options_of(sock.recv(4096))
            except socket.timeout:
                break
            if got and got[1].get(53) == bytes([want]):
                return got
    sys.exit('lab-dhcp-client: no DHCP answer on %s' % ifname)

offered, opts = exchange(message(1), 2)
acked, opts = exchange(message(3, bytes([50, 4]) + offered + bytes([54, 4]) + opts[54]), 5)
prefix = bin(struct.unpack('!I', opts.get(1, b'\\xff\\xff\\xff\\x00'))[0]).count('1')
addr = '%s/%d' % (socket.inet_ntoa(acked), prefix)
if apply:
    subprocess.run(['ip', 'addr', 'replace', addr, 'dev', ifname], check=True)
print('%s %s %d' % (addr, socket.inet_ntoa(opts[54]), struct.unpack('!I', opts.get(51, bytes(4)))[0]))
`

const XENSTORE = `#!/usr/bin/python3
"""Guest-side xenstore tools (xenstack lab): talk to the lab over /run/xenstored/socket."""
import json, os, socket, sys

SOCKET = os.environ.get('XENSTORED_PATH', '/run/xenstored/socket')
tool = os.path.basename(sys.argv[0])
args = [a for a in sys.argv[1:] if a not in ('-s',)]

def call(request):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(SOCKET)
    except OSError as e:
        sys.exit('%s: cannot connect to xenstored at %s: %s' % (tool, SOCKET, e.strerror))
    s.sendall((json.dumps(request) + '\\n').encode())
    data = b''
    while not data.endswith(b'\\n'):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    reply = json.loads(data or b'{}')
    if not reply.get('ok'):
        sys.exit('%s: %s' % (tool, reply.get('error', 'no answer from xenstored')))
    return reply

if tool == 'xenstore-read':
    if not args:
        sys.exit('usage: xenstore-read KEY...')
    for key in args:
        print(call({'op': 'read', 'key': key})['value'])
elif tool == 'xenstore-write':
    if not args or len(args) % 2:
        sys.exit('usage: xenstore-write KEY VALUE [KEY VALUE...]')
    for i in range(0, len(args), 2):
        call({'op': 'write', 'key': args[i], 'value': args[i + 1]})
elif tool == 'xenstore-rm':
    for key in args:
        call({'op': 'rm', 'key': key})
elif tool == 'xenstore-ls':
    for key, value in call({'op': 'ls', 'key': args[0] if args else ''})['entries']:
        print('%s = "%s"' % (key, value))
else:
    sys.exit('unknown xenstore tool %s' % tool)
`

export const HOST_PROGRAMS: Record<string, string> = {
  'lab-http-probe.mjs': HTTP_PROBE,
  'lab-dhcp-client': DHCP_CLIENT,
  'lab-xapi-relay.mjs': XAPI_RELAY,
  'xenstore-read': XENSTORE,
  'xenstore-write': XENSTORE,
  'xenstore-rm': XENSTORE,
  'xenstore-ls': XENSTORE,
}
