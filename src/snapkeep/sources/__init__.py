"""snapkeep.sources: what is backed up (layer 1½, between jobs and engine).

Glossary:
- account: one hosting account (``accounts.base.Account``) listed by an ``AccountProvider``
  (``accounts.inventory``: a TOML file; ``accounts.linux``: the host's users).
- component: what one ``contains`` bit backs up, in a fixed folder of the account's snapshot
  (``components``: config, homedir, databases, email, cron, domains, certificates, database_users, ftp).
- dump: a database's SQL streamed from ``mariadb-dump``/``pg_dump`` into the engine (``databases``);
  a dump without its trailer or with a bad exit status is a ``DumpError``, never stored.
- filter group: account filters an account must all pass (``filters``); a job's ``filters`` OR the
  groups inside a list and AND the lists.

See docs/accounts.md.
"""
