"""sentence-transformers on the same sentences as benches/text_encoder.rs: all-MiniLM-L6-v2
from the same wheel (scripts/reference-text-encoder's model folder), CPU, the sentences of the
reference repeated to 512, batches of 32, for SECONDS seconds. Prints {"sentences_per_s": ...}.

Usage: text_encoder_st.py SECONDS REFERENCE_DIR"""
import itertools
import json
import pathlib
import sys
import time

import torch
from sentence_transformers import SentenceTransformer


def main():
    seconds = float(sys.argv[1])
    reference = pathlib.Path(sys.argv[2])
    sentences = json.load(open(reference / "reference.json"))["sentences"]
    sentences = list(itertools.islice(itertools.cycle(sentences), 512))
    model = SentenceTransformer(str(reference / "model"), device="cpu")
    model.encode(sentences[:32], batch_size=32)
    done = 0
    started = time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - started < seconds:
            model.encode(sentences, batch_size=32, show_progress_bar=False)
            done += len(sentences)
    rate = done / (time.perf_counter() - started)
    print(json.dumps({"sentences_per_s": round(rate, 1), "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
