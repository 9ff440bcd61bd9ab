"""snapkeep.cli: the ``snapkeep`` command (click, rich).

``main`` loads each sub-command lazily from its table, so ``snapkeep repo`` never imports the web
framework or SQLAlchemy. Commands that manage objects go through the API dispatcher (``api``);
``run``/``restore``/``runs`` execute queue groups in the foreground (``jobs.runs``); ``repo`` works on
a repository with nothing but the destination (``repo``, ``repo_cmd``, ``repo_maint_cmd``).
"""
