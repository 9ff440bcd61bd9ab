"""snapkeep.storage: destinations as dumb byte stores (layer 0; knows nothing of backups).

Glossary
--------
store        the byte-store interface every backend implements (``base.Store``) and its guarantees
backend      a store of one kind: ``local``, ``memory``, ``sftp`` (OpenSSH client or paramiko), ``s3`` (boto3)
parameters   a frozen dataclass per backend that says where a store is, credentials included
registry     the one route to a store: ``registry.open_store(params)`` through the kind -> opener table
location     a string naming a store (a path, ``sftp://``, ``s3://``, ``memory://``); see ``locations``
wrapper      a store around a store: retries, limits, read-only, fault injection (``wrappers``)
probe        write, read, list and delete one object to check a destination (``probe``)
"""
