"""Random version-4 UUIDs for request and message ids, without a system call per id.

``uuid.uuid4()`` reads ``os.urandom``, which releases the GIL; under ingest the event loop then waits for other
threads to hand it back, once per id. These ids name requests and events; they are not secrets.
"""

from __future__ import annotations

import random
import uuid

_source = random.Random()  # seeded once from os.urandom


def random_uuid() -> str:
    return str(uuid.UUID(int=_source.getrandbits(128), version=4))
