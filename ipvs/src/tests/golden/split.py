"""Cuts strace's hex dumps of a netlink socket into one file per datagram.

Usage: split.py STRACE_OUTPUT PREFIX COMMAND. Writes PREFIX.N.hex for the
N-th datagram sent (".request") or received (".answer") that belongs to the
IPVS family, skipping the generic netlink controller's family lookup and
recvmsg calls that only peek at the size, acknowledgements, and the GET_INFO
exchange ipvsadm makes at every start (kept for `ipvsadm --version`).
"""
import re
import sys

trace, prefix, command = sys.argv[1:4]
datagrams = []  # (direction, bytes)
current = None
for line in open(trace):
    call = re.match(r"\d+\s+(sendmsg|recvmsg)\(", line)
    if call:
        peek = "MSG_PEEK" in line
        current = None if peek else ("request" if call.group(1) == "sendmsg" else "answer", bytearray())
        if current:
            datagrams.append(current)
        continue
    dump = re.match(r" \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2})+)", line)
    if dump and current:
        current[1].extend(bytes.fromhex(dump.group(1).replace(" ", "")))

# Types up to GENL_ID_CTRL are netlink's own (ACK, DONE) and the generic
# netlink controller's; IPVS gets a family id above them.
GENL_ID_CTRL = 0x10
IPVS_CMD_GET_INFO = 15
count = {"request": 0, "answer": 0}
for direction, data in datagrams:
    if len(data) < 20:
        continue
    message_type = int.from_bytes(data[4:6], "little")
    if message_type <= GENL_ID_CTRL:
        continue
    # ipvsadm asks GET_INFO at every start; keep it only where it is the point.
    if data[16] in (IPVS_CMD_GET_INFO, IPVS_CMD_GET_INFO - 1) and "--version" not in command:
        continue
    count[direction] += 1
    name = f"{prefix}.{direction}{count[direction]}.hex"
    with open(name, "w") as f:
        f.write(f"# {command}\n# {direction} {count[direction]}, captured by capture.sh\n")
        for i in range(0, len(data), 16):
            f.write(" ".join(f"{b:02x}" for b in data[i : i + 16]) + "\n")
