"""Repository maintenance: ``check`` (verify structure and data), ``prune`` (drop unreferenced
blobs and repack), ``forget`` (remove snapshots) and ``retention`` (the pure keep/remove policy)."""
