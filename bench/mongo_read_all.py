"""Time MongoEventStore.read_all over N synthetic events on a throwaway MongoDB-protocol server.

Starts the tests' SecantusDB server (tests/servers/mongo.py), inserts the events
straight into the store's collection (as appends would have stored them), then
reads them all back through the store, and prints the CPU time the reading took.

    .venv/bin/python bench/mongo_read_all.py --events 50000 --accounts 500
"""

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "techbank_site.settings")

from bench.seed_events import synthetic_events
from eventstore.backends.mongo import MongoEventStore
from eventstore.store import NewEvent
from tests.servers.mongo import running_mongo_server

BATCH_SIZE = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=10_000, help="read_all's batch size")
    args = parser.parse_args()

    with running_mongo_server() as url:
        store = MongoEventStore(url=f"{url}/bench?retryWrites=false", alias="bench")
        metadata = {"issued_by": "bench", "correlation_id": "bench-seed"}
        recorded_at = datetime.now(UTC)
        docs = []
        for position, (stream_id, version, event_type, data, occurred_at) in enumerate(
            synthetic_events(events=args.events, accounts=args.accounts, seed=4), start=1
        ):
            event = NewEvent(uuid.uuid4(), event_type, data, occurred_at, metadata)
            docs.append(store._new_document(stream_id, version - 1, position, event, recorded_at).to_mongo())
            if len(docs) == BATCH_SIZE:
                store._event_collection.insert_many(docs)
                docs.clear()
        if docs:
            store._event_collection.insert_many(docs)

        for _ in range(2):
            started, cpu = time.monotonic(), time.process_time()
            count = sum(1 for _ in store.read_all(batch_size=args.batch_size))
            cpu_seconds, wall_seconds = time.process_time() - cpu, time.monotonic() - started
            print(f"read_all: {count} events in {cpu_seconds:.2f} s CPU, {wall_seconds:.2f} s wall")
        store.close()


if __name__ == "__main__":
    main()
