"""Value types of the repository format that every engine package shares: ``snapshot.Snapshot``
and ``tree.Tree``/``tree.Node`` (with the tree blob's encoding and the entry-name rule)."""
