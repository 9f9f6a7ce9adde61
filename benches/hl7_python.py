"""HL7 v2 parsing with the PyPI package hl7 (0.4.5) on the same messages as benches/hl7.rs:
hl7.parse of each message, segments separated by CR, for SECONDS seconds in one thread.
Prints {"messages_per_s": ..., "messages": n}.

Usage: hl7_python.py SECONDS FILE..."""
import json
import sys
import time

import hl7


def main():
    seconds = float(sys.argv[1])
    messages = []
    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        # hl7.parse splits segments at CR only: give it CR-separated text, as the service
        # normalises CR, LF and CRLF before parsing.
        text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
        messages.append(text)
    for m in messages:
        hl7.parse(m)
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for m in messages:
            hl7.parse(m)
        done += len(messages)
    rate = done / (time.perf_counter() - started)
    print(json.dumps({"messages_per_s": round(rate, 1), "messages": len(messages)}))


if __name__ == "__main__":
    main()
