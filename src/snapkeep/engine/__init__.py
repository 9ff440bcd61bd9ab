"""The backup engine: a content-addressed, deduplicating, encrypted repository and what runs on it.

Glossary:

* **chunk**: a piece of a file cut by the content-defined chunker (``backup.chunker``).
* **blob**: a chunk or a tree, compressed and sealed, addressed by its keyed BLAKE3 ID.
* **pack**: a file of about ``format.PACK_TARGET_SIZE`` holding blobs and a sealed trailer listing
  them (``repository.pack_format``; written by ``repository.packer``).
* **index**: files mapping blob IDs to their place in packs; rebuildable from pack trailers.
* **tree**: the JSON blob of one folder's entries (``data.tree``); a node names a subtree or the
  content blobs of a file.
* **snapshot**: one backup run, pointing at a root tree; written last (``data.snapshot``; stored
  by ``repository.snapshot_store``).
* **Incremental** structure: a backup into the repository (``backup``), read back by ``restore``.
* **Archived/Compressed** structures: one tar (or ``.tar.zst``) per run with a manifest, beside the
  repository (``archive``).

Subpackages, lowest first (the import-linter contract "engine layers" in pyproject.toml):

* ``format``, ``progress``: the permanent format table and the progress callbacks.
* ``data``: value types every other package shares (``Snapshot``, ``Tree``/``Node``).
* ``repository``: ``Repository`` and its parts (crypto, keys, config, codec, packs, index, locks,
  snapshot store). ``fs``: the local file system (walking, safe restore targets).
* ``backup``, ``restore``, ``maintenance`` (check, prune, forget, retention) and ``archive``: the
  operations; none imports another.

This module imports nothing, so ``import snapkeep.engine.x`` stays as cheap as ``x`` itself.
"""
