"""A log writer run as a child process by the concurrency and crash tests.

Usage: python -m tests.guard.provenance.writer URL BATCHES BATCH_SIZE TAG
Prints one line per acknowledged record ("<record_id> <index>") right after its batch commits.
"""

from __future__ import annotations

import sys

from guard.provenance.log import ProvenanceLog
from tests.guard.provenance.helpers import make_record


def main() -> None:
    url, batches, size, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    log = ProvenanceLog(url)
    for b in range(batches):
        records = [make_record(b * size + i, prompt=f"{tag}-{b}-{i}") for i in range(size)]
        for entry in log.append_batch(records):
            sys.stdout.write(f"{entry.record_id} {entry.index}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
