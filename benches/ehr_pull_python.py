"""The peer of benches/ehr_pull.rs: the same pull written the way a Python integration script
would, with the standard library only (urllib, json, a thread per search): the Patient read,
then Observation, Condition, DocumentReference, DiagnosticReport and ImagingStudy searched at
once, PAGE_SIZE per page, every `next` link followed, every resource parsed.

    python ehr_pull_python.py BASE_URL PATIENT_ID RUNS PAGE_SIZE  ->  {"median_ms": ..., "p90_ms": ...}
"""
import json
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HEADERS = {"Accept": "application/fhir+json"}


def get(url):
    with urllib.request.urlopen(urllib.request.Request(url, headers=HEADERS)) as response:
        return json.loads(response.read())


def search_all(base, resource_type, patient, page_size):
    query = urllib.parse.urlencode({"patient": f"Patient/{patient}", "_count": page_size})
    url = f"{base}/{resource_type}?{query}"
    found = []
    while url:
        bundle = get(url)
        found += [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        url = next((l["url"] for l in bundle.get("link", []) if l["relation"] == "next"), None)
    return found


def pull(base, patient, page_size, pool):
    record = {"patient": get(f"{base}/Patient/{patient}")}
    types = ["Observation", "Condition", "DocumentReference", "DiagnosticReport", "ImagingStudy"]
    for t, found in zip(types, pool.map(lambda t: search_all(base, t, patient, page_size), types)):
        record[t] = found
    return record


def main():
    base, patient, runs, page_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    times = []
    with ThreadPoolExecutor(max_workers=5) as pool:
        pull(base, patient, page_size, pool)
        for _ in range(runs):
            start = time.perf_counter()
            pull(base, patient, page_size, pool)
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    at = lambda q: times[round((len(times) - 1) * q)]
    print(json.dumps({"median_ms": round(at(0.5), 1), "p90_ms": round(at(0.9), 1)}))


main()
